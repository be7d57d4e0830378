"""``vertex demo``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vertex_tools.cli.common import handle_errors

__all__ = ["demo"]


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data directory for the demo (default: a new temporary directory).",
)
@handle_errors
def demo(directory: Path | None) -> None:
    """Run the whole path locally: allowed and blocked calls, then verify the audit log.

    Always on a fresh SQLite data directory: it never touches a shared store.
    """
    from vertex_tools.demo.run import run_demo

    if click.get_current_context().find_root().params.get("store"):
        raise click.UsageError(
            "vertex demo runs on its own fresh SQLite directory and never writes to a shared "
            "store (it would push its own policy over the team's); drop --store"
        )

    sys.exit(run_demo(directory, say=click.echo))
