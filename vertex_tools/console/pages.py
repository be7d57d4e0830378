"""The console's pages, as HTML built with :mod:`vertex_tools.console.html` (every
value escaped). Approvals have their own module (``approval_pages``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from urllib.parse import urlencode

from vertex_tools.console.chart import SpendBar, spend_chart
from vertex_tools.console.html import Safe, fmt, join, layout, when
from vertex_tools.console.timeline import DECISIONS, ChainStatus, Filters, Row
from vertex_tools.tokens import IssuedToken, TokenRecord

__all__ = [
    "audit_page",
    "chain_html",
    "error_page",
    "hidden_csrf",
    "login_page",
    "revoke_page",
    "row_html",
    "spend_page",
    "token_issued_page",
    "tokens_page",
    "vars_of",
]


def hidden_csrf(csrf: str) -> Safe:
    """The synchronizer token field every state-changing form carries."""
    return fmt('<input type="hidden" name="csrf" value="{csrf}">', csrf=csrf)


def error_page(title: str, message: str, *, hint: str = "") -> bytes:
    """A refusal or failure, stated plainly, with what to do about it."""
    body = fmt('<p class="error">{message}</p>', message=message)
    if hint:
        body = fmt('{body}<p class="hint">{hint}</p>', body=body, hint=hint)
    return layout(title, body)


def login_page(code: str | None) -> bytes:
    """Without a code: how to get one. With one: a button that redeems it (a GET never
    signs in, so a link preview cannot spend the code)."""
    if not code:
        body = Safe(
            "<p>You are not signed in to the console.</p><p>On the broker's host, run "
            "<code>vertex console</code>: it prints a one-time sign-in link, good for "
            "10 minutes. Agent tokens do not work here.</p>"
        )
        return layout("Sign in", body)
    body = fmt(
        '<form method="post" action="/console/login" class="card">'
        '<input type="hidden" name="code" value="{code}">'
        "<p>This one-time link signs this browser in to the operator console.</p>"
        '<button type="submit" id="sign-in">Sign in</button></form>',
        code=code,
    )
    return layout("Sign in", body)


# audit ------------------------------------------------------------------------------------

_COLUMNS = ("seq", "time", "decision", "reason", "request", "token", "grant", "status", "message")


def row_html(row: Row) -> Safe:
    """One timeline row (``console.js`` builds the same from the JSON feed)."""
    decision = row.decision if row.decision in DECISIONS else "other"
    cells = join(
        fmt('<td class="c-{name}">{value}</td>', name=name, value=getattr(row, name))
        if name != "decision"
        else fmt(
            '<td><span class="badge d-{d}">{value}</span></td>', d=decision, value=row.decision
        )
        for name in _COLUMNS
    )
    return fmt('<tr data-seq="{seq}">{cells}</tr>', seq=row.seq, cells=cells)


def chain_html(chain: ChainStatus | None) -> Safe:
    """The chain's verify status and the last checkpoint."""
    if chain is None:
        return Safe('<div id="chain" class="card pending"><p>Verifying the chain…</p></div>')
    if chain.ok:
        state = fmt(
            '<p class="ok">Chain verified: {n} entries, head seq {seq} '
            '<code title="{head}">{short}</code> (checked {at})</p>',
            n=chain.entries,
            seq=chain.head_seq,
            head=chain.head_hash,
            short=chain.head_hash[:16],
            at=when(chain.checked),
        )
    else:
        state = fmt('<p class="bad">Chain BROKEN: {error}</p>', error=chain.error)
    if chain.checkpoint_seq is not None:
        cp = fmt(
            '<p>Last checkpoint: seq {seq}, head <code title="{head}">{short}</code>, '
            "signed {time} ({note})</p>",
            seq=chain.checkpoint_seq,
            head=chain.checkpoint_head,
            short=chain.checkpoint_head[:16],
            time=chain.checkpoint_time,
            note=chain.checkpoint_note,
        )
    else:
        cp = fmt('<p class="hint">{note}</p>', note=chain.checkpoint_note)
    return fmt(
        '<div id="chain" class="card {cls}">{state}{cp}</div>',
        cls="ok" if chain.ok else "bad",
        state=state,
        cp=cp,
    )


def _filter_form(filters: Filters) -> Safe:
    options = join(
        fmt(
            '<option value="{v}"{sel}>{label}</option>',
            v=value,
            label=value or "any",
            sel=Safe(" selected") if value == filters.decision else Safe(""),
        )
        for value in ("", *DECISIONS)
    )
    return fmt(
        '<form class="filters" method="get" action="/console/audit">'
        '<label>Token <input name="token" value="{token}" placeholder="tk_..."></label>'
        '<label>Grant <input name="grant" value="{grant}"></label>'
        '<label>Decision <select name="decision">{options}</select></label>'
        '<label>Reason <input name="reason" value="{reason}" placeholder="e.g. '
        'token_revoked"></label><button type="submit">Filter</button>'
        '<a href="/console/audit">Clear</a></form>',
        token=filters.token,
        grant=filters.grant,
        reason=filters.reason,
        options=options,
    )


def audit_page(
    rows: Sequence[Row], filters: Filters, chain: ChainStatus | None, *, csrf: str, operator: str
) -> bytes:
    """The live timeline (newest first) with its filters, and the chain's status."""
    query = urlencode({k: v for k, v in vars_of(filters).items() if v})
    head = join(fmt("<th>{name}</th>", name=name) for name in _COLUMNS)
    body = fmt(
        '{chain}{form}<p class="hint">Newest first; updates by itself. '
        '<span id="live" aria-live="polite"></span></p>'
        '<div class="scroll"><table id="timeline" data-feed="/console/audit.json?{query}">'
        "<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>",
        chain=chain_html(chain),
        form=_filter_form(filters),
        query=query,
        head=head,
        rows=join(row_html(r) for r in rows),
    )
    return layout("Audit", body, active="audit", csrf=csrf, operator=operator)


def vars_of(filters: Filters) -> dict[str, str]:
    """The filters as query parameters."""
    return {
        "token": filters.token,
        "grant": filters.grant,
        "decision": filters.decision,
        "reason": filters.reason,
    }


# tokens -----------------------------------------------------------------------------------


def _token_state(record: TokenRecord, now: float) -> Safe:
    if record.revoked is not None:
        return fmt('<span class="badge d-deny">revoked {at}</span>', at=when(record.revoked))
    if record.expires <= now:
        return Safe('<span class="badge d-other">expired</span>')
    return Safe('<span class="badge d-allow">active</span>')


def tokens_page(
    tokens: Sequence[TokenRecord],
    grants: Sequence[str],
    *,
    csrf: str,
    operator: str,
    once: str,
    notice: str = "",
    error: str = "",
) -> bytes:
    """Every token, the issue form (``once``: its one-time field), and a revoke link per
    live token."""
    now = time.time()
    rows = join(
        fmt(
            "<tr><td><code>{id}</code></td><td>{grant}</td><td>{created}</td><td>{expires}</td>"
            "<td>{used}</td><td>{state}</td><td>{action}</td></tr>",
            id=t.token_id,
            grant=t.grant,
            created=when(t.created),
            expires=when(t.expires),
            used=when(t.last_used) if t.last_used else "never",
            state=_token_state(t, now),
            action=fmt(
                '<a class="danger" href="/console/tokens/{id}/revoke">Revoke…</a>', id=t.token_id
            )
            if t.revoked is None and t.expires > now
            else Safe(""),
        )
        for t in tokens
    )
    options = join(fmt('<option value="{g}">{g}</option>', g=g) for g in grants)
    message = Safe("")
    if notice:
        message = fmt('<p class="notice">{notice}</p>', notice=notice)
    if error:
        message = fmt('<p class="error">{error}</p>', error=error)
    body = fmt(
        '{message}<form class="card issue" method="post" action="/console/tokens">{csrf}'
        '<input type="hidden" name="once" value="{once}"><h2>Issue a token</h2>'
        '<label>Grant <select name="grant" required>{options}</select></label>'
        '<label>Lifetime <input name="ttl" placeholder="the grant\'s ttl, e.g. 1h"></label>'
        '<button type="submit">Issue</button></form>'
        '<div class="scroll"><table id="tokens"><thead><tr><th>id</th><th>grant</th>'
        "<th>created</th><th>expires</th><th>last used</th><th>state</th><th></th></tr>"
        "</thead><tbody>{rows}</tbody></table></div>",
        message=message,
        csrf=hidden_csrf(csrf),
        once=once,
        options=options,
        rows=rows if tokens else Safe('<tr><td colspan="7">no tokens</td></tr>'),
    )
    return layout("Tokens", body, active="tokens", csrf=csrf, operator=operator)


def token_issued_page(issued: IssuedToken, *, csrf: str, operator: str) -> bytes:
    """The new token, shown this once (the page is not cached, and never shown again)."""
    record = issued.record
    body = fmt(
        '<div class="card"><p>Token <code>{id}</code> for grant <b>{grant}</b>, expires '
        '{expires}.</p><p class="warn">Copy it now: it is shown once and cannot be shown '
        'again.</p><pre id="new-token">{token}</pre>'
        '<p><a href="/console/tokens">Back to tokens</a></p></div>',
        id=record.token_id,
        grant=record.grant,
        expires=when(record.expires),
        token=issued.token,
    )
    return layout("Token issued", body, active="tokens", csrf=csrf, operator=operator)


def revoke_page(record: TokenRecord, *, csrf: str, operator: str) -> bytes:
    """The confirmation a revocation needs."""
    body = fmt(
        '<form class="card confirm" method="post" action="/console/tokens/{id}/revoke">{csrf}'
        "<p>Revoke token <code>{id}</code> (grant <b>{grant}</b>, expires {expires})?</p>"
        "<p>Its very next request is refused, on every broker sharing this store. "
        "This cannot be undone.</p>"
        '<button type="submit" class="danger" id="confirm-revoke">Revoke token</button> '
        '<a href="/console/tokens">Cancel</a></form>',
        id=record.token_id,
        grant=record.grant,
        expires=when(record.expires),
        csrf=hidden_csrf(csrf),
    )
    return layout("Revoke token", body, active="tokens", csrf=csrf, operator=operator)


# spend ------------------------------------------------------------------------------------


def spend_page(bars: Sequence[SpendBar], *, csrf: str, operator: str) -> bytes:
    """Spend per grant in the last 24 hours against its ceiling: a chart and the numbers."""
    if not bars:
        body = Safe("<p>No grant in the policy has a spend ceiling.</p>")
        return layout("Spend", body, active="spend", csrf=csrf, operator=operator)
    rows = join(
        fmt(
            "<tr><td>{grant}</td><td>{cur}</td><td>{spent}</td><td>{day}</td><td>{call}</td>"
            "<td>{pct}</td></tr>",
            grant=b.grant,
            cur=b.currency,
            spent=f"{b.spent:,}",
            day=f"{b.per_day:,}" if b.per_day else "-",
            call=f"{b.per_call:,}" if b.per_call else "-",
            pct=f"{100 * b.spent / b.per_day:.0f} %" if b.per_day else "-",
        )
        for b in bars
    )
    body = fmt(
        '<p class="hint">Reserved and committed spend in the last 24 hours, in minor units '
        '(cents for usd).</p><div class="card">{chart}</div>'
        '<table id="spend"><thead><tr><th>grant</th><th>currency</th><th>spent (24 h)</th>'
        "<th>per day</th><th>per call</th><th>used</th></tr></thead><tbody>{rows}</tbody>"
        "</table>",
        chart=spend_chart(list(bars)),
        rows=rows,
    )
    return layout("Spend", body, active="spend", csrf=csrf, operator=operator)
