"""``vertex token``: issue, list, revoke."""

from __future__ import annotations

from pathlib import Path

import click

from vertex_tools.cli.common import current_policy, emit_json, fmt_time, handle_errors, open_admin

__all__ = ["token"]


@click.group()
def token() -> None:
    """Scoped, revocable tokens for agents."""


@token.command("issue")
@click.option("--grant", required=True, help="The policy grant the token is bound to.")
@click.option("--ttl", help="Lifetime such as 30m, 1h, 7d (default: the grant's ttl).")
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Policy file (default: policy.toml in the data directory; with a shared store, "
    "the policy pushed to it).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON: id, token, grant, expires.")
@handle_errors
def issue(grant: str, ttl: str | None, policy_path: Path | None, as_json: bool) -> None:
    """Issue a token. It is printed once and cannot be shown again."""
    loaded = current_policy(policy_path)
    with open_admin() as admin:
        issued = admin.token_issue(loaded, grant, ttl)
    record = issued.record
    if as_json:
        emit_json(
            {
                "id": record.token_id,
                "token": issued.token,
                "grant": record.grant,
                "expires": fmt_time(record.expires),
            }
        )
        return
    click.echo(issued.token)
    click.echo(
        f"id {record.token_id}, grant {record.grant}, expires {fmt_time(record.expires)} "
        "(shown once: store it now)",
        err=True,
    )


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def list_(as_json: bool) -> None:
    """List tokens: id, grant, created, expires, last used, revoked."""
    with open_admin() as admin:
        records = admin.token_list()
    rows = [
        {
            "id": r.token_id,
            "grant": r.grant,
            "created": fmt_time(r.created),
            "expires": fmt_time(r.expires),
            "last_used": fmt_time(r.last_used),
            "revoked": fmt_time(r.revoked),
        }
        for r in records
    ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no tokens")
    for row in rows:
        state = f"revoked {row['revoked']}" if row["revoked"] else f"expires {row['expires']}"
        click.echo(
            f"{row['id']}  {row['grant']:20} created {row['created']}  {state}  "
            f"last used {row['last_used'] or 'never'}"
        )


@token.command("revoke")
@click.argument("token_id")
@handle_errors
def revoke(token_id: str) -> None:
    """Revoke TOKEN_ID (or a whole token found somewhere); the next request is refused."""
    with open_admin() as admin:
        record = admin.token_revoke(token_id)
    click.echo(f"revoked {record.token_id} (grant {record.grant})")
