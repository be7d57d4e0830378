"""HTML with escaping by default.

``fmt(template, **values)`` escapes every value unless it is :class:`Safe` (HTML this
module or the page code built). Only templates written here, as literals, are
trusted: anything from the audit log, the store, the policy or a request is a
value, and so escaped (quotes included, so it is safe in attributes too).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime

__all__ = ["Safe", "esc", "fmt", "join", "layout", "when"]


class Safe(str):
    """A string that is already HTML (built by ``fmt``), not to be escaped again."""

    __slots__ = ()


def esc(value: object) -> Safe:
    """``value`` as text in HTML."""
    if isinstance(value, Safe):
        return value
    return Safe(html.escape("" if value is None else str(value), quote=True))


def fmt(template: str, /, **values: object) -> Safe:
    """Fill ``{name}`` fields of a literal template, escaping each value."""
    return Safe(template.format(**{k: esc(v) for k, v in values.items()}))


def join(parts: Iterable[Safe], sep: str = "") -> Safe:
    """Concatenate HTML fragments."""
    return Safe(sep.join(esc(p) for p in parts))


def when(ts: float | None) -> str:
    """A Unix time for people: ISO-8601 UTC to the second, or a dash."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_NAV = (("audit", "Audit"), ("tokens", "Tokens"), ("approvals", "Approvals"), ("spend", "Spend"))


def layout(
    title: str, body: Safe, *, active: str = "", csrf: str | None = None, operator: str = ""
) -> bytes:
    """A whole page: header with navigation and sign-out (when signed in), then ``body``."""
    nav = Safe("")
    if csrf is not None:
        links = join(
            fmt(
                '<a href="/console/{key}"{cls}>{label}</a>',
                key=key,
                label=label,
                cls=Safe(' class="active" aria-current="page"') if key == active else Safe(""),
            )
            for key, label in _NAV
        )
        nav = fmt(
            '<nav>{links}</nav><form class="signout" method="post" action="/console/logout">'
            '<input type="hidden" name="csrf" value="{csrf}">'
            '<span class="who">signed in as {operator}</span>'
            '<button type="submit" class="link">Sign out</button></form>',
            links=links,
            csrf=csrf,
            operator=operator,
        )
    page = fmt(
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>{title} - vertex console</title>"
        '<link rel="stylesheet" href="/console/static/console.css">'
        '<script src="/console/static/console.js" defer></script></head>'
        '<body><header><span class="brand">vertex console</span>{nav}</header>'
        "<main><h1>{title}</h1>{body}</main></body></html>\n",
        title=title,
        nav=nav,
        body=body,
    )
    return page.encode("utf-8")
