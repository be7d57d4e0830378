"""``vertex console``: a one-time sign-in link for the operator console (``/console``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from vertex_tools.cli.common import emit_json, fmt_time, get_home, handle_errors, open_admin
from vertex_tools.console.credentials import CODE_TTL
from vertex_tools.errors import ConfigError
from vertex_tools.policy.durations import parse_duration

__all__ = ["console"]


def _broker_url(url: str | None, ready_file: Path | None) -> str | None:
    """``--url``; else the URL in ``--ready-file``; else the newest ready file the local
    broker left in the data directory's logs/; else None."""
    if url:
        return url.rstrip("/")
    candidates = [ready_file] if ready_file is not None else []
    if ready_file is None:
        logs = get_home().logs
        if logs.is_dir():
            candidates = sorted(
                logs.glob("ready-*.json"), key=lambda p: p.stat().st_mtime, reverse=True
            )
    for path in candidates:
        try:
            found = str(json.loads(path.read_text("utf-8"))["url"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if ready_file is not None:
                raise ConfigError(f"--ready-file {path}: no broker URL in it ({exc})") from exc
            continue
        if found.startswith("http"):
            return found.rstrip("/")
    return None


@click.command()
@click.option("--url", metavar="URL", help="The broker's address, e.g. http://127.0.0.1:8750.")
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Take the address from the file `vertex serve --ready-file` wrote.",
)
@click.option("--ttl", default="10m", show_default=True, help="How long the link stays good.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: url, path, expires.")
@handle_errors
def console(url: str | None, ready_file: Path | None, ttl: str, as_json: bool) -> None:
    """Print a one-time sign-in link for the operator console.

    The link is good once, for --ttl (at most 10 minutes); opening it and pressing
    "Sign in" gives that browser a session (8 hours) on every broker sharing this
    store. Only a hash of the code is stored. Treat the link like a password until
    it is used: anyone who opens it first is signed in as you.

    Agent tokens never work in the console, and the console never takes one.
    """
    try:
        seconds = float(parse_duration(ttl))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from exc
    if not 0 < seconds <= CODE_TTL:
        raise click.BadParameter("a login link lives at most 10m", param_hint="--ttl")
    base = _broker_url(url, ready_file)
    with open_admin() as admin:
        code, expires = admin.console_login_code(seconds)
    path = f"/console/login?code={code}"
    link = f"{base}{path}" if base else path
    if as_json:
        emit_json({"url": link if base else None, "path": path, "expires": fmt_time(expires)})
        return
    click.echo(link)
    note = f"one-time sign-in link, good until {fmt_time(expires)}"
    if not base:
        note += "; open it on the broker's address (pass --url to print it whole)"
    click.echo(note, err=True)
