"""Held requests: the list, and one request shown exactly as stored, with its tainted
arguments and the untrusted source each came from. All of it may be an attacker's
text (paths, bodies, excerpts): every value is escaped, nothing is interpreted."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

from vertex_tools.broker.controls import Unreadable, strict_json
from vertex_tools.console.html import Safe, fmt, join, layout, when
from vertex_tools.console.pages import hidden_csrf
from vertex_tools.store import ApprovalRecord, ApprovalState

__all__ = ["approval_page", "approvals_page"]


def _amount(request: Mapping[str, Any]) -> str:
    if request.get("amount") is None:
        return "-"
    return f"{request['amount']} {request.get('currency') or ''} (minor units)".strip()


def _target(request: Mapping[str, Any]) -> str:
    query = request.get("query") or ""
    return f"{request.get('method', '')} {request.get('upstream', '')}{request.get('path', '')}" + (
        f"?{query}" if query else ""
    )


def _taint_summary(record: ApprovalRecord) -> str:
    if not record.taint:
        return "none (untrusted content in the run)"
    return "; ".join(
        f"{t.get('argument')} from {', '.join(str(s) for s in t.get('sources', []))}"
        for t in record.taint
    )


def approvals_page(records: Sequence[ApprovalRecord], *, csrf: str, operator: str) -> bytes:
    """Pending requests first, then the decided ones."""
    pending = [r for r in records if r.state is ApprovalState.PENDING]
    decided = [r for r in records if r.state is not ApprovalState.PENDING]

    def table(rows: Sequence[ApprovalRecord], table_id: str, empty: str) -> Safe:
        if not rows:
            return fmt('<p class="hint">{empty}</p>', empty=empty)
        body = join(
            fmt(
                '<tr><td><a href="/console/approvals/{id}">{id}</a></td>'
                '<td><span class="badge s-{state}">{state}</span></td><td>{grant}</td>'
                "<td>{op}</td><td>{amount}</td><td>{target}</td><td>{taint}</td>"
                "<td>{created}</td></tr>",
                id=r.approval_id,
                state=r.state.value,
                grant=r.grant,
                op=r.request.get("operation"),
                amount=_amount(r.request),
                target=_target(r.request),
                taint=_taint_summary(r),
                created=when(r.created),
            )
            for r in rows
        )
        return fmt(
            '<div class="scroll"><table id="{tid}"><thead><tr><th>id</th><th>state</th>'
            "<th>grant</th><th>operation</th><th>amount</th><th>request</th>"
            "<th>tainted arguments</th><th>held</th>"
            "</tr></thead><tbody>{body}</tbody></table></div>",
            tid=table_id,
            body=body,
        )

    body = fmt(
        "<h2>Pending</h2>{pending}<h2>Decided, used or expired</h2>{decided}",
        pending=table(pending, "pending", "No request is waiting for approval."),
        decided=table(decided[:100], "decided", "None yet."),
    )
    return layout("Approvals", body, active="approvals", csrf=csrf, operator=operator)


def _arguments(body: str) -> list[tuple[str, str]]:
    """Top-level arguments of a JSON object or form body, as stored (text)."""
    if not body:
        return []
    try:
        parsed = strict_json(body.encode())
    except Unreadable:
        try:
            return [(k, v) for k, v in parse_qsl(body, keep_blank_values=True, strict_parsing=True)]
        except ValueError:
            return []
    if not isinstance(parsed, dict):
        return []
    return [
        (str(k), v if isinstance(v, str) else json.dumps(v, sort_keys=True))
        for k, v in parsed.items()
    ]


def _pretty(body: str) -> str:
    try:
        return json.dumps(strict_json(body.encode()), indent=2, sort_keys=True)
    except Unreadable:
        return body


def approval_page(record: ApprovalRecord, *, csrf: str, operator: str) -> bytes:
    """One held request, exactly: what it does, to whom, for how much, and why it is held."""
    request = dict(record.request)
    taint = [dict(t) for t in record.taint]
    tainted = {str(t.get("argument")): t for t in taint}
    facts = [
        ("state", Safe(fmt('<span class="badge s-{s}">{s}</span>', s=record.state.value))),
        ("grant", fmt("{g} (token <code>{t}</code>)", g=record.grant, t=record.token_id)),
        ("operation", fmt("{o} ({r})", o=request.get("operation"), r=request.get("risk"))),
        ("request", fmt("<code>{t}</code>", t=_target(request))),
        ("amount", fmt('<b class="amount">{a}</b>', a=_amount(request))),
    ]
    if request.get("resource"):
        facts.append(("resource", fmt("{r}", r=request["resource"])))
    for name, value in request.get("headers") or ():
        facts.append(("header", fmt("<code>{n}: {v}</code>", n=name, v=value)))
    facts.append(("held", fmt("{c}, expires {e}", c=when(record.created), e=when(record.expires))))
    if record.decided is not None:
        facts.append(
            (
                "decided",
                fmt(
                    "{d} by {b}: {n}",
                    d=when(record.decided),
                    b=record.decided_by,
                    n=record.note or "",
                ),
            )
        )
    facts_html = join(fmt("<tr><th>{k}</th><td>{v}</td></tr>", k=k, v=v) for k, v in facts)
    args = _arguments(str(request.get("body") or ""))
    args_html = join(
        fmt(
            '<tr class="{cls}"><th>{name}</th><td><code>{value}</code></td><td>{mark}</td></tr>',
            cls="tainted" if name in tainted else "",
            name=name,
            value=value,
            mark=fmt(
                '<span class="badge d-deny">tainted</span> from {src}',
                src=", ".join(str(s) for s in tainted[name].get("sources", [])),
            )
            if name in tainted
            else "",
        )
        for name, value in args
    )
    if taint:
        taint_html = join(
            fmt(
                '<li><b>{arg}</b> came from <b class="source">{src}</b> (seen by {seen})'
                "<blockquote>…{excerpt}…</blockquote></li>",
                arg=t.get("argument"),
                src=", ".join(str(s) for s in t.get("sources", [])),
                seen=t.get("seen_by"),
                excerpt=t.get("excerpt", ""),
            )
            for t in taint
        )
        taint_html = fmt('<ul id="taint">{items}</ul>', items=taint_html)
    else:
        taint_html = Safe(
            '<p id="taint">No tainted argument: held because untrusted content entered the run.</p>'
        )
    truncated = Safe("")
    if request.get("body_truncated"):
        truncated = fmt(
            '<p class="warn">Only the first part of the body ({n} bytes in all) is shown: '
            "do not approve what you cannot see.</p>",
            n=request.get("body_bytes", "?"),
        )
    actions = Safe("")
    if record.state is ApprovalState.PENDING:
        actions = fmt(
            '<form class="card decide" method="post" action="/console/approvals/{id}/decide">'
            "{csrf}<label>Note (recorded in the audit log; a denial's note is told to the agent) "
            '<input name="note" maxlength="500"></label>'
            '<button type="submit" name="decision" value="approve" id="approve">Approve once'
            '</button> <button type="submit" name="decision" value="deny" class="danger" '
            'id="deny">Deny</button></form>',
            id=record.approval_id,
            csrf=hidden_csrf(csrf),
        )
    body = fmt(
        '<table class="facts">{facts}</table><h2>Tainted arguments</h2>{taint}'
        '<h2>Arguments</h2><table class="args" id="arguments">{args}</table>'
        '<h2>Body, as stored</h2>{truncated}<pre id="body">{body}</pre>{actions}'
        '<p><a href="/console/approvals">Back to approvals</a></p>',
        facts=facts_html,
        taint=taint_html,
        args=args_html or Safe("<tr><td>none</td></tr>"),
        truncated=truncated,
        body=_pretty(str(request.get("body") or "")),
        actions=actions,
    )
    return layout(
        f"Approval {record.approval_id}", body, active="approvals", csrf=csrf, operator=operator
    )
