"""What every console request must pass, and the headers every console answer carries.

Order of checks (``app.py`` runs them in this order; the first failure answers):

1. No agent credential: an ``Authorization``, ``Proxy-Authorization``, ``apikey`` or
   ``X-Api-Key`` header, any ``X-Vertex-*`` header (signatures, runs, taint reports),
   or a vertex token anywhere in the target or cookies. 403: the console is for
   operators; agent tokens are never console credentials.
2. Method: GET only reads; POST is the only method that changes state (anything else,
   HEAD included, is 405). A POST body is an url-encoded form of at most
   ``MAX_FORM_BYTES``, each field once: 415, 413 or 400 otherwise.
3. A live session (cookie ``vertex_console``), except for the sign-in page and static
   files: else a redirect to the sign-in page, which says to run ``vertex console``.
4. POST only: the request comes from the console's own origin (``Sec-Fetch-Site`` if
   sent is ``same-origin``, an ``Origin`` if sent names this host, and at least one of
   them is there), and, once signed in, its
   ``csrf`` form field equals the session's token (constant-time). 403 otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http.cookies import CookieError, SimpleCookie
from urllib.parse import unquote_plus, urlsplit

from vertex_tools.broker.answers import TOKEN_IN_TEXT
from vertex_tools.console.credentials import COOKIE, SESSION_TTL

__all__ = [
    "SECURITY_HEADERS",
    "agent_credential",
    "clear_cookie",
    "header_map",
    "same_origin",
    "session_cookie",
    "set_cookie",
]

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
)
"""No inline script, no framing, nothing cached, no referrer leaving the console."""

_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "apikey", "x-api-key"})


def header_map(raw: Sequence[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    """Headers by lower-case name, every value kept."""
    found: dict[str, list[str]] = {}
    for name, value in raw:
        found.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return found


def agent_credential(headers: Mapping[str, list[str]], target: str) -> str | None:
    """What agent credential the request carries (for the refusal), or None."""
    for name in headers:
        if name in _CREDENTIAL_HEADERS:
            return f"a {name} header"
        if name.startswith("x-vertex-"):
            return f"an {name} header"
    # Decoded too: ``%5F`` for ``_`` hides a token from the pattern, not from the filters
    # that would show it on the page.
    if TOKEN_IN_TEXT.search(target) or TOKEN_IN_TEXT.search(unquote_plus(target)):
        return "a vertex token in the URL"
    if any(TOKEN_IN_TEXT.search(v) for v in headers.get("cookie", [])):
        return "a vertex token in a cookie"
    return None


def session_cookie(headers: Mapping[str, list[str]]) -> str | None:
    """The console session id from the ``Cookie`` header, or None."""
    for value in headers.get("cookie", []):
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(value)
        except CookieError:
            continue
        morsel = jar.get(COOKIE)
        if morsel is not None and morsel.value:
            return morsel.value
    return None


def set_cookie(session_id: str, *, secure: bool) -> tuple[str, str]:
    """The ``Set-Cookie`` header that signs the browser in."""
    flags = "; Secure" if secure else ""
    return (
        "set-cookie",
        f"{COOKIE}={session_id}; Path=/console; HttpOnly; SameSite=Strict; "
        f"Max-Age={int(SESSION_TTL)}{flags}",
    )


def clear_cookie() -> tuple[str, str]:
    """The ``Set-Cookie`` header that signs the browser out."""
    return ("set-cookie", f"{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")


def same_origin(headers: Mapping[str, list[str]]) -> str | None:
    """None when a POST comes from the console's own origin, else why not.

    ``Sec-Fetch-Site`` (set by the browser, not by page script) must say
    ``same-origin`` when sent; an ``Origin`` other than ``null`` must name this host
    (under ``Referrer-Policy: no-referrer`` Chromium sends ``Origin: null`` on forms).
    At least one of the two must vouch for the request: one with neither is refused."""
    hosts = headers.get("host", [])
    origins = headers.get("origin", [])
    fetch_site = headers.get("sec-fetch-site", [])
    if len(hosts) != 1 or len(origins) > 1 or len(fetch_site) > 1:
        return "the request has no single Host, Origin or Sec-Fetch-Site header"
    vouched = False
    if origins and origins[0] != "null":
        origin = urlsplit(origins[0])
        if origin.scheme not in ("http", "https") or origin.netloc.lower() != hosts[0].lower():
            return "the request comes from another origin"
        vouched = True
    if fetch_site:
        if fetch_site[0] != "same-origin":
            return "the browser says the request crossed sites (Sec-Fetch-Site)"
        vouched = True
    if not vouched:
        return "the request does not show it comes from the console (no Origin or Sec-Fetch-Site)"
    return None
