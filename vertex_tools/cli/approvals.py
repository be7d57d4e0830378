"""``vertex approvals``: list, show, approve, deny held requests.

A request is held when the policy's effect is ``approve`` (a tainted control
argument under ``taint.control = "approve"``, or a strict grant once untrusted
content entered the run). An approval is bound to the exact request and used
once: the agent retries the same call, and only that call goes ahead.
"""

from __future__ import annotations

import json
import re
from typing import Any

import click

from vertex_tools.broker.controls import Unreadable, strict_json
from vertex_tools.cli.common import emit_json, fmt_time, handle_errors, open_admin
from vertex_tools.store import ApprovalRecord, ApprovalState

__all__ = ["approvals"]


def _row(record: ApprovalRecord) -> dict[str, Any]:
    request = dict(record.request)
    return {
        "id": record.approval_id,
        "state": record.state.value,
        "grant": record.grant,
        "token_id": record.token_id,
        "operation": request.get("operation"),
        "method": request.get("method"),
        "upstream": request.get("upstream"),
        "path": request.get("path"),
        "amount": request.get("amount"),
        "currency": request.get("currency"),
        "created": fmt_time(record.created),
        "expires": fmt_time(record.expires),
        "decided": fmt_time(record.decided),
        "decided_by": record.decided_by,
        "note": record.note,
        "used": fmt_time(record.used),
    }


_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def safe(text: object) -> str:
    """Text an attacker may have written, made safe for a terminal: control characters
    (escape sequences, carriage returns) and bidirectional overrides are shown as
    ``\\xNN`` / ``\\uNNNN`` instead of acting on the screen."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


@click.group()
def approvals() -> None:
    """Requests held for a human's approval."""


@approvals.command("list")
@click.option("--all", "show_all", is_flag=True, help="Every approval, not only pending ones.")
@click.option(
    "--state",
    type=click.Choice([s.value for s in ApprovalState]),
    help="Only approvals in this state.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def list_(show_all: bool, state: str | None, as_json: bool) -> None:
    """List held requests (pending ones by default)."""
    wanted = ApprovalState(state) if state else (None if show_all else ApprovalState.PENDING)
    with open_admin() as admin:
        records = admin.approval_list(wanted)
    rows = [_row(r) for r in records]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no pending approvals" if wanted is ApprovalState.PENDING else "no approvals")
    for row in rows:
        amount = f" {row['amount']} {row['currency']}" if row["amount"] is not None else ""
        click.echo(
            safe(
                f"{row['id']}  {row['state']:8} {row['grant']:16} {row['operation']}{amount}  "
                f"{row['method']} {row['upstream']}{row['path']}  expires {row['expires']}"
            )
        )


@approvals.command("show")
@click.argument("approval_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, with the request and taint.")
@handle_errors
def show(approval_id: str, as_json: bool) -> None:
    """Show APPROVAL_ID: the exact request, its tainted arguments and their sources."""
    with open_admin() as admin:
        record = admin.approval_get(approval_id)
    data = _row(record)
    data["request"] = dict(record.request)
    data["taint"] = [dict(t) for t in record.taint]
    data["digest"] = record.digest
    if as_json:
        emit_json(data)
        return
    request = data["request"]
    lines = [f"approval {record.approval_id}: {record.state.value}"]
    lines.append(f"  grant      {record.grant} (token {record.token_id})")
    lines.append(f"  operation  {request.get('operation')} ({request.get('risk')})")
    target = request.get("path", "") + (f"?{request['query']}" if request.get("query") else "")
    lines.append(f"  request    {request.get('method')} {request.get('upstream')} {target}")
    if request.get("resource"):
        lines.append(f"  resource   {request['resource']}")
    if request.get("amount") is not None:
        lines.append(f"  amount     {request['amount']} {request.get('currency')} (minor units)")
    for name, value in request.get("headers") or ():
        lines.append(f"  header     {name}: {value}")
    if request.get("reason"):
        lines.append(f"  reason     {request['reason']}")
    body = request.get("body") or ""
    if body:
        try:
            shown = json.dumps(strict_json(body.encode()), indent=2, sort_keys=True)
        except Unreadable:
            shown = body
        lines.append("  body")
        lines.extend(f"    {line}" for line in shown.splitlines())
        if request.get("body_truncated"):
            lines.append(
                f"    ... truncated: only the first {len(body.encode())} of "
                f"{request.get('body_bytes', '?')} bytes are shown; do not approve what you "
                "cannot see (vertex approvals show --json has the same part)"
            )
    if record.taint:
        lines.append("  tainted arguments")
        for taint in data["taint"]:
            sources = ", ".join(taint.get("sources", []))
            lines.append(
                f"    {taint.get('argument')!s:16} from {sources} (seen by {taint.get('seen_by')})"
            )
            if taint.get("excerpt"):
                lines.append(f"      ...{taint['excerpt']}...")
    else:
        lines.append("  no tainted argument: held because untrusted content entered the run")
    lines.append(f"  created    {data['created']}, expires {data['expires']}")
    if record.decided is not None:
        lines.append(f"  decided    {data['decided']} by {record.decided_by}: {record.note or ''}")
    for line in lines:
        click.echo(safe(line))


def _decide(approval_id: str, note: str | None, *, approve: bool) -> None:
    with open_admin() as admin:
        record = admin.approval_decide(approval_id, approve=approve, note=note)
    verb = "approved" if approve else "denied"
    tail = (
        "; the agent's retry of the same request goes ahead once"
        if approve
        else "; the agent's retry is refused"
    )
    click.echo(
        f"{verb} {record.approval_id} ({record.request.get('operation')}){tail}, "
        f"until {fmt_time(record.expires)}"
    )


@approvals.command("approve")
@click.argument("approval_id")
@click.option("--note", help="Why (recorded in the audit log).")
@handle_errors
def approve(approval_id: str, note: str | None) -> None:
    """Approve APPROVAL_ID: its exact request may go ahead once."""
    _decide(approval_id, note, approve=True)


@approvals.command("deny")
@click.argument("approval_id")
@click.option("--note", help="Why (recorded in the audit log, and told to the agent).")
@handle_errors
def deny(approval_id: str, note: str | None) -> None:
    """Deny APPROVAL_ID: the agent's retry is refused."""
    _decide(approval_id, note, approve=False)
