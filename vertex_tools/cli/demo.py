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
    """Run the whole path locally: allowed and blocked calls, then verify the audit log."""
    from vertex_tools.demo.run import run_demo

    sys.exit(run_demo(directory, say=click.echo))
