"""What every ``vertex`` subcommand shares: the data directory, exit codes, errors, output."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click

from vertex_tools.errors import AuditIntegrityError, CheckpointError, PolicyError, VertexError
from vertex_tools.home import Home
from vertex_tools.policy import LoadedPolicy, load_policy
from vertex_tools.store.location import StoreLocation, resolve_store

__all__ = [
    "EXIT_CHECK_FAILED",
    "EXIT_ERROR",
    "current_policy",
    "emit_json",
    "fmt_time",
    "get_home",
    "get_store",
    "handle_errors",
    "open_admin",
]

EXIT_CHECK_FAILED = 1  # a check ran and failed: invalid policy, broken audit log
EXIT_ERROR = 3  # could not do what was asked: not initialised, unknown name, bad key
if TYPE_CHECKING:
    from vertex_tools.admin import Admin

P = ParamSpec("P")
R = TypeVar("R")


def get_home() -> Home:
    """The data directory chosen by ``--home`` or ``VERTEX_HOME``."""
    ctx = click.get_current_context()
    root = ctx.find_root()
    explicit = root.params.get("home")
    return Home.resolve(explicit, os.environ)


def get_store() -> StoreLocation:
    """The store chosen by ``--store`` or ``VERTEX_STORE`` (default: SQLite in the home)."""
    root = click.get_current_context().find_root()
    return resolve_store(root.params.get("store"), os.environ, get_home())


def open_admin() -> Admin:
    """An operator session on the chosen data directory and store."""
    from vertex_tools.admin import Admin

    return Admin(get_home(), os.environ, store=get_store())


def current_policy(explicit: Path | None) -> LoadedPolicy:
    """``explicit`` if given; else with a shared store the newest pushed policy, else
    ``policy.toml`` in the data directory."""
    from vertex_tools.broker.policy_source import DatabasePolicySource

    if explicit is not None:
        return load_policy(explicit)
    store = get_store()
    policies = store.policies()
    if policies is None:
        return load_policy(get_home().policy)
    source = DatabasePolicySource(policies)
    try:
        return source.load()
    finally:
        source.close()


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
