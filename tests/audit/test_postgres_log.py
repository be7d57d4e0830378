"""The audit log in PostgreSQL: the same chain, verification and checkpoints as the
SQLite file, one linear chain under concurrent appenders, and the group-commit
writer on top of it."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Iterator
from multiprocessing.synchronize import Event
from pathlib import Path

import psycopg
import pytest

from tests.audit.conftest import FakeClock
from tests.pg import PostgresCluster
from vertex_tools.audit import (
    AsyncAuditWriter,
    CheckpointKey,
    EntryKind,
    make_checkpoint,
    verify_log,
)
from vertex_tools.audit._pglog import PostgresAuditLog
from vertex_tools.errors import AuditIntegrityError, AuditUnavailable
from vertex_tools.store.dsn import PostgresDsn
from vertex_tools.store.postgres import initialise_postgres

PER_WRITER = 150


@pytest.fixture
def url(pg_cluster: PostgresCluster) -> str:
    created = pg_cluster.create_database()
    initialise_postgres(PostgresDsn(created), actor="tests")
    return created


@pytest.fixture
def log(url: str, clock: FakeClock) -> Iterator[PostgresAuditLog]:
    with PostgresAuditLog(PostgresDsn(url), clock=clock) as opened:
        yield opened


def test_appends_chain_and_verify_like_the_sqlite_log(log: PostgresAuditLog) -> None:
    first = log.append(EntryKind.INTENT, {"request_id": "r1", "method": "GET"})
    batch = log.append_many([(EntryKind.OUTCOME, {"request_id": "r1"}), (EntryKind.ADMIN, {})])
    assert [r.seq for r in [first, *batch]] == [1, 2, 3]
    assert batch[0].prev_hash == first.hash
    assert [r.data for r in log.records()] == [r.data for r in [first, *batch]]
    assert log.tail(1)[0].hash == batch[-1].hash
    assert log.head() == (3, batch[-1].hash) and log.count() == 3
    report = verify_log(log)
    assert (report.entries, report.head_hash) == (3, batch[-1].hash)


def test_edits_are_refused_and_an_attackers_edit_is_found(
    log: PostgresAuditLog, url: str, tmp_path: Path
) -> None:
    for i in range(5):
        log.append(EntryKind.ADMIN, {"i": i})
    key = CheckpointKey.generate(tmp_path / "cp.key", tmp_path / "cp.pub")
    checkpoint = make_checkpoint(log, key)
    with psycopg.connect(url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("UPDATE audit_log SET entry = entry WHERE seq = 2")
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("TRUNCATE audit_log")
        # The attacker owns the database: triggers go, then a row is changed.
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        conn.execute(
            "UPDATE audit_log SET entry = convert_to(replace(convert_from(entry, 'UTF8'), "
            "'\"i\":2', '\"i\":7'), 'UTF8') WHERE seq = 3"
        )
    with pytest.raises(AuditIntegrityError) as caught:
        verify_log(log)
    assert (caught.value.seq, caught.value.what) == (3, "hash")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM audit_log WHERE seq >= 3")  # truncation...
    assert verify_log(log).entries == 2  # ...that the bare chain cannot see
    with pytest.raises(AuditIntegrityError, match="truncated"):
        verify_log(log, checkpoint=checkpoint, public_key=key.public_key)


def test_a_read_only_log_refuses_appends(url: str) -> None:
    with (
        PostgresAuditLog(PostgresDsn(url), read_only=True) as log,
        pytest.raises(AuditUnavailable, match="read-only"),
    ):
        log.append(EntryKind.ADMIN, {})


def append_from_another_process(url: str, writer: str, start: Event) -> None:
    """Runs in a child: wait for the starting gun, then append one entry at a time."""
    start.wait()
    with PostgresAuditLog(PostgresDsn(url)) as log:
        for i in range(PER_WRITER):
            log.append(EntryKind.ADMIN, {"writer": writer, "i": i})


@pytest.mark.slow
def test_processes_appending_at_once_make_one_chain(url: str) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    processes = [
        context.Process(target=append_from_another_process, args=(url, name, start))
        for name in ("replica-a", "replica-b", "cli")
    ]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=100)
        assert process.exitcode == 0
    with PostgresAuditLog(PostgresDsn(url), read_only=True) as log:
        assert verify_log(log).entries == 3 * PER_WRITER
        records = list(log.records())
    for writer in ("replica-a", "replica-b", "cli"):
        assert [r.data["i"] for r in records if r.data["writer"] == writer] == list(
            range(PER_WRITER)
        )


async def test_the_group_commit_writer_appends_to_postgres(url: str) -> None:
    dsn = PostgresDsn(url)
    writers = [
        AsyncAuditWriter(lambda: PostgresAuditLog(dsn), label=dsn.redacted) for _ in range(2)
    ]
    for writer in writers:
        writer.start()
    records = await asyncio.gather(
        *(writers[i % 2].append(EntryKind.INTENT, {"request_id": f"r{i}"}) for i in range(200))
    )
    for writer in writers:
        await writer.aclose()
    assert sorted(r.seq for r in records) == list(range(1, 201))
    assert sum(w.committed_entries for w in writers) == 200
    with PostgresAuditLog(dsn, read_only=True) as log:
        assert verify_log(log).entries == 200


def test_a_writer_on_an_uninitialised_database_fails_at_start(
    pg_cluster: PostgresCluster,
) -> None:
    dsn = PostgresDsn(pg_cluster.create_database())
    writer = AsyncAuditWriter(lambda: PostgresAuditLog(dsn), label=dsn.redacted)
    with pytest.raises(AuditUnavailable, match="not initialised"):
        writer.start()
