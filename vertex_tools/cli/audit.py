"""``vertex audit``: verify, checkpoint, tail."""

from __future__ import annotations

from pathlib import Path

import click

from vertex_tools.audit import (
    CheckpointKey,
    make_checkpoint,
    read_checkpoint,
    verify_log,
    write_checkpoint,
)
from vertex_tools.audit._backend import AuditBackend
from vertex_tools.cli.common import emit_json, get_home, get_store, handle_errors
from vertex_tools.errors import AuditIntegrityError, CheckpointError

__all__ = ["audit"]


@click.group()
def audit() -> None:
    """The hash-chained, tamper-evident audit log."""


def _open() -> AuditBackend:
    """The log of the chosen store, read-only: these commands only read it."""
    store = get_store()
    store.require()
    return store.open_audit(read_only=True)


@audit.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A checkpoint from `vertex audit checkpoint`: also catches truncation and rewrites.",
)
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Checkpoint public key kept off this host (default: checkpoint.pub in the data dir).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@handle_errors
def verify(
    checkpoint_path: Path | None, public_key: Path | None, as_json: bool, quiet: bool
) -> None:
    """Check every entry's hash and link. Exit 1 naming the first bad entry."""
    home = get_home()
    checkpoint = read_checkpoint(checkpoint_path) if checkpoint_path else None
    key = None
    if checkpoint is not None:
        key = CheckpointKey.load_public(public_key or home.checkpoint_pub)
    with _open() as log:
        total = log.count()
        show = not quiet and not as_json and total >= 50_000
        with click.progressbar(length=total, label="verifying", hidden=not show) as bar:
            done = 0

            def progress(n: int, _total: int) -> None:
                nonlocal done
                bar.update(n - done)
                done = n

            try:
                report = verify_log(log, checkpoint=checkpoint, public_key=key, progress=progress)
            except (AuditIntegrityError, CheckpointError) as exc:
                if as_json:
                    emit_json(
                        {
                            "ok": False,
                            "seq": getattr(exc, "seq", None),
                            "what": getattr(exc, "what", "checkpoint"),
                            "error": str(exc),
                        }
                    )
                    raise SystemExit(1) from exc
                raise
    if as_json:
        emit_json(
            {
                "ok": True,
                "entries": report.entries,
                "head_seq": report.head_seq,
                "head_hash": report.head_hash.hex(),
                "checkpoint_seq": report.checkpoint_seq,
            }
        )
        return
    message = f"ok: {report.entries} entries, head {report.head_seq} {report.head_hash.hex()[:16]}"
    if report.checkpoint_seq is not None:
        message += f", consistent with the checkpoint at {report.checkpoint_seq}"
    click.echo(message)


@audit.command("checkpoint")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the signed checkpoint (keep a copy off this host).",
)
@handle_errors
def checkpoint(out: Path) -> None:
    """Verify the log, then sign (sequence, head hash) with the checkpoint key."""
    home = get_home()
    key = CheckpointKey.load_private(home.checkpoint_key)
    with _open() as log:
        verify_log(log)  # never vouch for a log that is already broken
        cp = make_checkpoint(log, key)
    write_checkpoint(cp, out)
    # A copy the console checks the log against (the copy off this host is the one that
    # counts: whoever controls this host can replace this one).
    write_checkpoint(cp, home.last_checkpoint)
    click.echo(f"checkpoint at seq {cp.seq} written to {out}")


@audit.command("tail")
@click.option("-n", "count", default=20, show_default=True, help="How many entries.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@handle_errors
def tail(count: int, as_json: bool) -> None:
    """Show the last entries, oldest first."""
    import json

    with _open() as log:
        records = log.tail(max(0, count))
    for r in records:
        if as_json:
            click.echo(json.dumps(r.to_json(), sort_keys=True))
            continue
        d = r.data
        item = r.to_json()
        if r.kind.value == "intent":
            text = (
                f"{d.get('effect', '?'):7} {d.get('reason', '?'):24} {d.get('method', '')} "
                f"/{d.get('upstream', '')}{d.get('path', '')} token={d.get('token_id') or '-'}"
            )
        elif r.kind.value == "outcome":
            text = f"{'':7} -> {d.get('status')} {d.get('reason', '')} {d.get('latency_us', 0)}us"
        else:
            rest = {k: v for k, v in d.items() if k != "action"}
            text = f"admin   {d.get('action', '?'):24} {rest}"
        click.echo(f"{r.seq:>6} {item['time']} {r.kind.value:7} {text}")
