"""``vertex policy check | push``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vertex_tools.cli.common import (
    EXIT_CHECK_FAILED,
    emit_json,
    get_home,
    handle_errors,
    open_admin,
)
from vertex_tools.errors import PolicyError
from vertex_tools.policy import load_policy, parse_policy

__all__ = ["policy"]


@click.group()
def policy() -> None:
    """Check policy files; push one to a shared store."""


@policy.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check(file: Path | None, as_json: bool) -> None:
    """Validate FILE (default: policy.toml in the data directory). Exit 1 if invalid."""
    path = file or get_home().policy
    try:
        loaded = load_policy(path)
    except PolicyError as exc:
        if as_json:
            emit_json(
                {
                    "valid": False,
                    "path": str(path),
                    "problems": [{"key": k, "line": ln, "message": m} for k, ln, m in exc.problems],
                }
            )
        else:
            for key, line, message in exc.problems:
                where = f"{path}:{line}" if line is not None else str(path)
                click.echo(f"{where}: {key or '(file)'}: {message}", err=True)
        sys.exit(EXIT_CHECK_FAILED)
    p = loaded.policy
    if as_json:
        emit_json(
            {
                "valid": True,
                "path": str(path),
                "digest": loaded.digest,
                "upstreams": sorted(p.upstreams),
                "grants": sorted(p.grants),
            }
        )
        return
    click.echo(
        f"{path}: ok ({len(p.upstreams)} upstreams, {len(p.grants)} grants, "
        f"digest {loaded.digest[:16]})"
    )


@policy.command("push")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@handle_errors
def push(file: Path) -> None:
    """Validate FILE and make it the policy every replica of the shared store serves.

    Brokers pick it up within their reload interval (about a second). Exit 1,
    with the line of every problem, if FILE is invalid: nothing is pushed.
    """
    source = file.read_bytes()
    loaded = parse_policy(source, str(file))  # the digest pushed is of these very bytes
    with open_admin() as admin:
        version = admin.policy_push(loaded, source)
    click.echo(f"pushed {file} as policy version {version} (digest {loaded.digest[:16]})")
