"""``vertex approvals``: list, show, approve, deny held requests.

A request is held when the policy's effect is ``approve`` (a tainted control
argument under ``taint.control = "approve"``, or a strict grant once untrusted
content entered the run). An approval is bound to the exact request and used
once: the agent retries the same call, and only that call goes ahead.
"""

from __future__ import annotations

import json
from typing import Any

import click

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
            f"{row['id']}  {row['state']:8} {row['grant']:16} {row['operation']}{amount}  "
            f"{row['method']} {row['upstream']}{row['path']}  expires {row['expires']}"
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
    click.echo(f"approval {record.approval_id}: {record.state.value}")
    click.echo(f"  grant      {record.grant} (token {record.token_id})")
    click.echo(f"  operation  {request.get('operation')} ({request.get('risk')})")
    target = request.get("path", "") + (f"?{request['query']}" if request.get("query") else "")
    click.echo(f"  request    {request.get('method')} {request.get('upstream')} {target}")
    if request.get("resource"):
        click.echo(f"  resource   {request['resource']}")
    if request.get("amount") is not None:
        click.echo(f"  amount     {request['amount']} {request.get('currency')} (minor units)")
    body = request.get("body") or ""
    if body:
        try:
            shown = json.dumps(json.loads(body), indent=2, sort_keys=True)
        except ValueError:
            shown = body
        click.echo("  body")
        for line in shown.splitlines():
            click.echo(f"    {line}")
    if record.taint:
        click.echo("  tainted arguments")
        for taint in data["taint"]:
            sources = ", ".join(taint.get("sources", []))
            click.echo(
                f"    {taint.get('argument')!s:16} from {sources} (seen by {taint.get('seen_by')})"
            )
            if taint.get("excerpt"):
                click.echo(f"      ...{taint['excerpt']}...")
    else:
        click.echo("  no tainted argument: held because untrusted content entered the run")
    click.echo(f"  created    {data['created']}, expires {data['expires']}")
    if record.decided is not None:
        click.echo(f"  decided    {data['decided']} by {record.decided_by}: {record.note or ''}")


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
