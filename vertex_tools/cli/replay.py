"""``vertex replay FILE... [--policy FILE] [--json]``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vertex_tools.cli.common import EXIT_CHECK_FAILED, EXIT_ERROR, emit_json, get_home
from vertex_tools.errors import PolicyError, VertexError

__all__ = ["replay"]


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Policy to replay under (default: policy.toml in the data directory).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def replay(files: tuple[Path, ...], policy_path: Path | None, as_json: bool) -> None:
    """Replay recorded sessions offline through the broker's pipeline and report every
    decision that differs from the recorded one.

    Nothing is sent upstream: answers come from the files. Each session runs in a
    throwaway data directory with fresh spend, rate and approval state; a held call
    the recording shows approved (or denied) is decided the same way.

    \b
    Exit codes: 0 every decision is the same, 1 some decision differs,
    3 could not run (a malformed or truncated file, an invalid policy).
    """
    from vertex_tools.replay import replay_files

    path = policy_path or get_home().policy
    if not path.is_file():
        click.echo(
            f"vertex: error: no policy file at {path}: pass --policy FILE, or --home / "
            "VERTEX_HOME for a data directory that has a policy.toml",
            err=True,
        )
        sys.exit(EXIT_ERROR)
    try:
        results = replay_files(list(files), path)
    except PolicyError as exc:
        click.echo(f"vertex: error: the policy {path} is invalid: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except VertexError as exc:
        click.echo(f"vertex: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    differ = any(not r.ok for r in results)
    if as_json:
        emit_json(
            {
                "policy": str(path),
                "same": not differ,
                "sessions": [r.to_json() for r in results],
            }
        )
    else:
        for result in results:
            for difference in result.differences:
                click.echo(difference.describe())
                if difference.new.message:
                    click.echo(f"    now: {difference.new.message}")
            verdict = "same" if result.ok else f"{len(result.differences)} differ"
            click.echo(f"{result.file}: {result.calls} calls, {verdict}")
    if differ:
        sys.exit(EXIT_CHECK_FAILED)
