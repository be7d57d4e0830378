"""``vertex vault``: put, list, rm, rotate-key. Secrets enter through stdin only."""

from __future__ import annotations

import sys

import click

from vertex_tools.cli.common import emit_json, fmt_time, handle_errors, open_admin
from vertex_tools.errors import VaultError
from vertex_tools.vault import MasterKey

__all__ = ["vault"]


def _read_secret() -> str:
    if sys.stdin.isatty():
        secret = click.prompt("secret", hide_input=True, confirmation_prompt=True, err=True)
        assert isinstance(secret, str)
        return secret
    data = sys.stdin.read()
    # One trailing newline is how `echo` and files end; anything else is the secret's.
    if data.endswith("\r\n"):
        data = data[:-2]
    elif data.endswith("\n"):
        data = data[:-1]
    if not data:
        raise VaultError("no secret on stdin; pipe it in or run the command in a terminal")
    return data


@click.group()
def vault() -> None:
    """Seal provider secrets in the vault (AES-256-GCM). Values are never shown."""


@vault.command("put")
@click.argument("name")
@click.argument("extra", nargs=-1, metavar="")
@click.option("--provider", required=True, help="The provider the secret is for (e.g. stripe).")
@handle_errors
def put(name: str, extra: tuple[str, ...], provider: str) -> None:
    """Store the secret read from stdin (a no-echo prompt on a terminal) as NAME."""
    if extra:
        # Never echo the extra argument: it is probably the secret.
        raise click.UsageError(
            "vault put reads the secret from stdin only, never from arguments (they end up in "
            "shell history and the process list); if you typed a secret here, rotate it"
        )
    secret = _read_secret()
    with open_admin() as admin:
        info = admin.vault_put(name, provider, secret)
    click.echo(f"stored {info.name} ({info.provider}), key {info.key_id}")


@vault.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def list_(as_json: bool) -> None:
    """Show entry names, providers and dates (never values)."""
    with open_admin() as admin:
        entries = admin.vault_list()
    rows = [
        {
            "name": e.name,
            "provider": e.provider,
            "created": fmt_time(e.created.timestamp()),
            "updated": fmt_time(e.updated.timestamp()),
            "key_id": e.key_id,
        }
        for e in entries
    ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("the vault is empty")
    for r in rows:
        click.echo(f"{r['name']:24} {r['provider']:10} updated {r['updated']}  key {r['key_id']}")


@vault.command("rm")
@click.argument("name")
@handle_errors
def rm(name: str) -> None:
    """Delete the entry NAME."""
    with open_admin() as admin:
        admin.vault_remove(name)
    click.echo(f"removed {name}")


@vault.command("rotate-key")
@click.option(
    "--new-key-stdin",
    is_flag=True,
    help="Read the new master key from stdin (needed when VERTEX_MASTER_KEY is set).",
)
@handle_errors
def rotate_key(new_key_stdin: bool) -> None:
    """Re-encrypt every entry under a new master key."""
    new_key = MasterKey.decode(sys.stdin.readline().strip()) if new_key_stdin else None
    with open_admin() as admin:
        old_id, new_id, count = admin.vault_rotate_key(new_key)
    click.echo(f"re-encrypted {count} entries: key {old_id} -> {new_id}")
