"""What every ``vertex`` subcommand shares: the data directory, exit codes, errors, output."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import click

from vertex_tools.errors import AuditIntegrityError, CheckpointError, PolicyError, VertexError
from vertex_tools.home import Home

__all__ = ["EXIT_CHECK_FAILED", "EXIT_ERROR", "emit_json", "fmt_time", "get_home", "handle_errors"]

EXIT_CHECK_FAILED = 1  # a check ran and failed: invalid policy, broken audit log
EXIT_ERROR = 3  # could not do what was asked: not initialised, unknown name, bad key
P = ParamSpec("P")
R = TypeVar("R")


def get_home() -> Home:
    """The data directory chosen by ``--home`` or ``VERTEX_HOME``."""
    ctx = click.get_current_context()
    root = ctx.find_root()
    explicit = root.params.get("home")
    return Home.resolve(explicit, os.environ)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn our errors into one line on stderr and a meaningful exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (PolicyError, AuditIntegrityError, CheckpointError) as exc:
            click.echo(f"vertex: {exc}", err=True)
            sys.exit(EXIT_CHECK_FAILED)
        except VertexError as exc:
            click.echo(f"vertex: error: {exc}", err=True)
            sys.exit(EXIT_ERROR)

    return wrapper


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout."""
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def fmt_time(ts: float | None) -> str | None:
    """Unix time as ISO-8601 UTC (seconds precision); None stays None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
