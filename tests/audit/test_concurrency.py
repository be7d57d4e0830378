"""Several processes appending to one file never fork the chain."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from vertex_tools.audit import AuditLog, EntryKind, verify_log

PER_WRITER = 300


def append_from_another_process(path: str, writer: str, start: Event) -> None:
    """Runs in a child: wait for the starting gun, then open (creating) and append."""
    start.wait()
    # Generous timeout: the two processes take turns for every single append.
    with AuditLog(Path(path), busy_timeout_s=60) as log:
        for i in range(PER_WRITER):
            log.append(EntryKind.ADMIN, {"writer": writer, "i": i})


@pytest.mark.slow
def test_two_processes_appending_at_once_make_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"  # not created yet: both processes race to create it too
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    processes = [
        context.Process(target=append_from_another_process, args=(str(path), name, start))
        for name in ("broker", "cli")
    ]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=100)
        assert process.exitcode == 0

    with AuditLog(path, read_only=True) as log:
        report = verify_log(log)
        assert report.entries == 2 * PER_WRITER
        records = list(log.records())
    # One linear chain holding every entry once, each writer's in its own order.
    for writer in ("broker", "cli"):
        mine = [r.data["i"] for r in records if r.data["writer"] == writer]
        assert mine == list(range(PER_WRITER))


def create_and_append_once(path: str, start: Event) -> None:
    """Runs in a child: open the (new) file at the same moment as the others."""
    start.wait()
    with AuditLog(Path(path), busy_timeout_s=30) as log:
        log.append(EntryKind.ADMIN, {"pid": multiprocessing.current_process().name})


@pytest.mark.slow
def test_many_processes_creating_the_same_file_at_once(tmp_path: Path) -> None:
    # Regression: switching a new file to WAL does not wait in SQLite's busy
    # handler, so one of several simultaneous creators used to fail at once.
    path = tmp_path / "audit.db"
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    processes = [
        context.Process(target=create_and_append_once, args=(str(path), start)) for _ in range(8)
    ]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=100)
        assert process.exitcode == 0
    with AuditLog(path, read_only=True) as log:
        assert verify_log(log).entries == 8
