"""``vertex``: initialise a broker, vault secrets, issue tokens, serve, audit.

Exit codes: 0 success; 1 a check failed (invalid policy, broken audit log);
2 usage error; 3 the command could not run (not initialised, unknown name...).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from vertex_tools.cli.approvals import approvals
from vertex_tools.cli.audit import audit
from vertex_tools.cli.common import get_home, get_store, handle_errors
from vertex_tools.cli.console import console
from vertex_tools.cli.demo import demo
from vertex_tools.cli.policy import policy
from vertex_tools.cli.replay import replay
from vertex_tools.cli.token import token
from vertex_tools.cli.vault import vault
from vertex_tools.home import init_home

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data directory (default: $VERTEX_HOME, else ~/.vertex).",
)
@click.option(
    "--store",
    metavar="URL",
    help="Shared state for broker replicas: postgresql://user@host/db (default: "
    "$VERTEX_STORE, else SQLite in the data directory). Keep the password out of the "
    "URL: PGPASSWORD or ~/.pgpass.",
)
@click.version_option(package_name="vertex-tools")
def cli(home: Path | None, store: str | None) -> None:
    """Brokered egress for AI agents: the agent holds a scoped token, never the secret.

    \b
    Exit codes: 0 ok, 1 check failed, 2 usage error, 3 could not run.
    """


@cli.command()
@handle_errors
def init() -> None:
    """Create the data directory: master key, checkpoint key, policy.toml, databases.

    Safe to run again: nothing that exists is overwritten. With --store
    postgresql://..., applies the shared database's pending schema migrations.
    """
    home = get_home()
    created = init_home(home, environ=os.environ, store=get_store())
    for item in created:
        click.echo(f"created {item}")
    if not created:
        click.echo(f"{home.root} is already initialised")
    click.echo(
        f"next: vertex --home {home.root} vault put NAME --provider P  (the secret on stdin)"
    )


@cli.command()
@click.option("--listen", metavar="HOST:PORT", help="TCP address (default 127.0.0.1:8750).")
@click.option("--uds", type=click.Path(dir_okay=False, path_type=Path), help="Unix socket path.")
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Policy file (default: policy.toml in the data directory; with a shared store "
    "the policy comes from the database: vertex policy push).",
)
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write {url, pid} here once serving (for programs that start the broker).",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow --listen on a non-loopback address (behind a TLS proxy).",
)
@handle_errors
def serve(
    listen: str | None,
    uds: Path | None,
    policy_path: Path | None,
    ready_file: Path | None,
    allow_remote: bool,
) -> None:
    """Run the broker. Reloads the policy when it changes, or on SIGHUP.

    With --store postgresql://..., any number of replicas share state, audit
    log and policy (the newest `vertex policy push`).
    """
    from vertex_tools.broker.server import serve as run

    if listen and uds:
        raise click.UsageError("give --listen or --uds, not both")
    store = get_store()
    if store.shared and policy_path is not None:
        raise click.UsageError(
            "--policy: with a shared store every replica serves the policy in the database; "
            "push the file with `vertex policy push FILE`"
        )
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    home = get_home()
    run(
        home,
        policy_path=policy_path or home.policy,
        listen=listen,
        uds=uds,
        environ=os.environ,
        ready_file=ready_file,
        allow_remote=allow_remote,
        store=store,
    )


cli.add_command(vault)
cli.add_command(token)
cli.add_command(policy)
cli.add_command(audit)
cli.add_command(demo)
cli.add_command(approvals)
cli.add_command(replay)
cli.add_command(console)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="vertex")
