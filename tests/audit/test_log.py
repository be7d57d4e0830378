"""AuditLog against real SQLite files: appends, reads, and failing closed."""

from __future__ import annotations

import itertools
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pytest

from tests.audit.conftest import START_S, FakeClock, attacker, fill
from vertex_tools.audit import GENESIS_HASH, AuditLog, EntryKind, verify_log
from vertex_tools.audit._entry import chain_hash
from vertex_tools.errors import AuditIntegrityError, AuditUnavailable


def test_empty_log(log: AuditLog) -> None:
    assert log.head() == (0, GENESIS_HASH)
    assert log.count() == 0
    assert log.tail(5) == []
    assert list(log.records()) == []
    assert len(log.log_id()) == 16


def test_appends_chain_from_genesis(log: AuditLog) -> None:
    first = log.append(EntryKind.INTENT, {"op": "charges.create", "amount": 1200})
    second = log.append(EntryKind.OUTCOME, {"status": 200})
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    entry = b'{"data":{"amount":1200,"op":"charges.create"},"kind":"intent","seq":1,'
    entry += b'"time":1700000000000000,"v":1}'
    assert first.hash == chain_hash(GENESIS_HASH, entry)
    assert first.time_us == START_S * 1_000_000
    assert second.time_us == first.time_us + 500_000
    assert dict(first.data) == {"op": "charges.create", "amount": 1200}
    assert first.kind is EntryKind.INTENT
    assert log.head() == (2, second.hash)


def test_records_are_decoded_from_the_stored_entry(log: AuditLog, log_path: Path) -> None:
    fill(log, 3)
    stored = sqlite3.connect(log_path).execute("SELECT entry FROM audit_log WHERE seq = 2")
    assert stored.fetchone()[0] == (
        b'{"data":{"i":2,"op":"op-2"},"kind":"outcome","seq":2,"time":1700000000500000,"v":1}'
    )
    assert [r.seq for r in log.records()] == [1, 2, 3]
    assert [r.seq for r in log.records(start=2)] == [2, 3]
    assert [r.seq for r in log.tail(2)] == [2, 3]
    assert [r.seq for r in log.tail(10)] == [1, 2, 3]
    assert log.tail(0) == []
    assert log.tail(1)[0] == next(log.records(start=3))


def test_records_pages_through_a_long_log(log: AuditLog) -> None:
    log.append_many([(EntryKind.ADMIN, {"i": i}) for i in range(2_500)])
    assert [r.data["i"] for r in log.records()] == list(range(2_500))


def test_append_many_is_one_transaction(log: AuditLog, clock: FakeClock) -> None:
    log.append(EntryKind.ADMIN, {"before": True})
    calls = clock.calls
    records = log.append_many([(EntryKind.INTENT, {"i": i}) for i in range(50)])
    assert [r.seq for r in records] == list(range(2, 52))
    # The clock is read once per transaction, so one read means one transaction.
    assert clock.calls == calls + 1
    assert len({r.time_us for r in records}) == 1
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
    assert verify_log(log).entries == 51


def test_append_many_writes_all_or_nothing(log: AuditLog, log_path: Path) -> None:
    fill(log, 2)
    # A real failure in the middle of the batch: SQLite refuses the 4th row.
    attacker(log_path).execute(
        "CREATE TRIGGER fail_at_4 BEFORE INSERT ON audit_log WHEN NEW.seq = 4"
        " BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    )
    with pytest.raises(AuditUnavailable, match="disk says no"):
        log.append_many([(EntryKind.INTENT, {"i": i}) for i in range(5)])
    assert log.count() == 2
    assert log.append_many([]) == []
    assert verify_log(log).entries == 2


def test_bad_data_is_refused_before_anything_is_locked(log: AuditLog, clock: FakeClock) -> None:
    with pytest.raises(TypeError, match=r"data\['amount'\] is a float"):
        log.append(EntryKind.INTENT, {"amount": 12.5})
    with pytest.raises(TypeError, match=r"data\['x'\]\[0\] is a float"):
        log.append_many([(EntryKind.INTENT, {"ok": 1}), (EntryKind.INTENT, {"x": [0.5]})])
    assert clock.calls == 0
    assert log.count() == 0


def test_reopening_keeps_the_chain_and_the_log_id(log_path: Path, clock: FakeClock) -> None:
    with AuditLog(log_path, clock=clock) as first:
        fill(first, 3)
        log_id = first.log_id()
    with AuditLog(log_path, clock=clock, create=False) as again:
        assert again.log_id() == log_id
        record = again.append(EntryKind.ADMIN, {"reopened": True})
        assert record.seq == 4
        assert verify_log(again).entries == 4


def test_file_settings(log: AuditLog, log_path: Path) -> None:
    conn = sqlite3.connect(log_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    schema = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'audit_log'").fetchone()[0]
    for column in (
        '"seq" INTEGER PRIMARY KEY',
        '"prev_hash" BLOB NOT NULL',
        '"hash" BLOB NOT NULL',
        '"entry" BLOB NOT NULL',
    ):
        assert column in schema
    assert log._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_rows_cannot_be_changed_through_sqlite_by_accident(log: AuditLog, log_path: Path) -> None:
    fill(log, 2)
    conn = sqlite3.connect(log_path, isolation_level=None)
    for statement in ("UPDATE audit_log SET entry = x'00'", "DELETE FROM audit_log"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(statement)
    assert log.count() == 2


def test_two_logs_have_different_ids(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "a.db") as a, AuditLog(tmp_path / "b.db") as b:
        assert a.log_id() != b.log_id()


# -- failing closed -----------------------------------------------------------


def test_missing_file_without_create(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(AuditUnavailable, match=r"cannot open audit log .*nope\.db"):
        AuditLog(missing, create=False)
    assert not missing.exists()


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(AuditUnavailable, match="cannot open audit log"):
        AuditLog(tmp_path / "no" / "such" / "audit.db")


def test_a_database_that_is_not_an_audit_log_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "state.db"
    sqlite3.connect(other).execute("CREATE TABLE tokens (id TEXT)")
    with pytest.raises(AuditUnavailable, match=r"not a vertex_tools audit log \(tables: tokens\)"):
        AuditLog(other)
    assert sqlite3.connect(other).execute("SELECT count(*) FROM sqlite_master").fetchone() == (1,)


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "audit.db"
    junk.write_bytes(b"this is not a database, just some text that is long enough" * 100)
    with pytest.raises(AuditUnavailable, match="not a database"):
        AuditLog(junk)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("UPDATE meta SET value = 'vertex_tools.audit.v9' WHERE key = 'format'", "format"),
        ("DELETE FROM meta WHERE key = 'log_id'", "no valid log_id"),
        ("UPDATE meta SET value = x'00' WHERE key = 'log_id'", "no valid log_id"),
    ],
)
def test_unknown_format_or_missing_log_id_is_refused(
    log_path: Path, clock: FakeClock, sql: str, message: str
) -> None:
    AuditLog(log_path, clock=clock).close()
    attacker(log_path).execute(sql)
    with pytest.raises(AuditUnavailable, match=message):
        AuditLog(log_path)


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    """chattr +i: the one read-only that also binds root (needs CAP_LINUX_IMMUTABLE)."""
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("chattr is not installed: scripts/setup installs Debian's e2fsprogs as root")
    done = subprocess.run([chattr, "+i", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"chattr +i needs CAP_LINUX_IMMUTABLE: {done.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


# How each case makes the file read-only. chmod is not a case: tests and CI run
# as root, who ignores mode bits. SQLite's own mode=ro (AuditLog(read_only=True))
# always runs; chattr +i makes the file itself immutable, which binds root too.
READ_ONLY_CASES: dict[str, Callable[[Path], Any]] = {
    "sqlite-mode-ro": lambda path: nullcontext(),
    "chattr-immutable": immutable,
}


@pytest.mark.parametrize("case", list(READ_ONLY_CASES))
def test_read_only_file_makes_append_unavailable(
    log_path: Path, clock: FakeClock, case: str
) -> None:
    with AuditLog(log_path, clock=clock) as log:
        fill(log, 2)
    with (
        READ_ONLY_CASES[case](log_path),
        AuditLog(log_path, clock=clock, read_only=case == "sqlite-mode-ro") as log,
    ):
        with pytest.raises(AuditUnavailable) as caught:
            log.append(EntryKind.INTENT, {"op": "x"})
        message = str(caught.value)
        assert str(log_path) in message
        assert "readonly" in message
        assert isinstance(caught.value.__cause__, sqlite3.Error)
        # Reading still works, and nothing was half-written.
        assert log.count() == 2
        assert verify_log(log).entries == 2


def test_locked_database_makes_append_unavailable(log_path: Path, clock: FakeClock) -> None:
    with AuditLog(log_path, clock=clock, busy_timeout_s=0.05) as log:
        fill(log, 1)
        holder = sqlite3.connect(log_path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(AuditUnavailable) as caught:
                log.append(EntryKind.INTENT, {"op": "x"})
            message = str(caught.value)
            assert str(log_path) in message
            assert "database is locked" in message
            assert "0.05 s" in message
        finally:
            holder.execute("ROLLBACK")
        # The lock is gone: the log works again and nothing was half-written.
        assert log.append(EntryKind.INTENT, {"op": "y"}).seq == 2
        assert verify_log(log).entries == 2


def test_full_disk_makes_append_unavailable(log: AuditLog) -> None:
    fill(log, 3)
    # SQLite's own limit stands in for a full disk: the same SQLITE_FULL error.
    pages = log._conn.execute("PRAGMA page_count").fetchone()[0]
    log._conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(AuditUnavailable, match=r"disk is full \(SQLITE_FULL\)"):
        log.append_many([(EntryKind.OUTCOME, {"body": "x" * 10_000})] * 5)
    assert log.count() == 3
    assert verify_log(log).entries == 3


def test_closed_log_is_unavailable(log_path: Path) -> None:
    log = AuditLog(log_path)
    log.close()
    log.close()
    with pytest.raises(AuditUnavailable, match="closed"):
        log.append(EntryKind.ADMIN, {})
    with pytest.raises(AuditUnavailable, match="closed"):
        log.count()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e300, None])
def test_a_broken_clock_makes_append_unavailable(log_path: Path, bad: Any) -> None:
    with AuditLog(log_path, clock=lambda: bad) as log:
        with pytest.raises(AuditUnavailable, match="clock"):
            log.append(EntryKind.ADMIN, {})
        assert log.count() == 0


def test_invalid_arguments(log: AuditLog, log_path: Path) -> None:
    with pytest.raises(ValueError, match="busy_timeout_s"):
        AuditLog(log_path, busy_timeout_s=-1)
    with pytest.raises(ValueError, match="n must be"):
        log.tail(-1)
    with pytest.raises(ValueError, match="'bogus' is not a valid EntryKind"):
        log.append("bogus", {})  # type: ignore[arg-type]


def test_since_reads_only_the_recent_end_of_the_log(tmp_path: Path) -> None:
    """``since`` walks back from the end and stops at the first older entry: an entry
    before that is never read (here one that no longer decodes)."""
    path = tmp_path / "audit.db"
    now = 1_800_000_000.0
    with AuditLog(path, clock=lambda: now - 3600) as old:
        for i in range(700):
            old.append(EntryKind.ADMIN, {"i": i})
    with AuditLog(path, clock=lambda: now) as log:
        for i in range(5):
            log.append(EntryKind.INTENT, {"i": i})
    raw = sqlite3.connect(path)
    raw.execute("DROP TRIGGER audit_log_no_update")
    raw.execute("UPDATE audit_log SET entry = 'not json' WHERE seq = 1")
    raw.commit()
    raw.close()
    with AuditLog(path, clock=lambda: now, read_only=True) as log:
        recent = log.since(int((now - 60) * 1_000_000), page=2)
        assert [r.data["i"] for r in recent] == [0, 1, 2, 3, 4]
        assert [r.seq for r in recent] == [701, 702, 703, 704, 705]
        with pytest.raises(AuditIntegrityError):
            log.since(int((now - 7200) * 1_000_000))  # reaches the broken first entry
