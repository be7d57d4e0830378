"""verify_log: every kind of tampering is caught at the first bad entry, by name."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.audit.conftest import FakeClock, attacker, fill
from vertex_tools.audit import (
    GENESIS_HASH,
    AuditLog,
    CheckpointKey,
    EntryKind,
    make_checkpoint,
    verify_log,
)
from vertex_tools.audit._entry import chain_hash
from vertex_tools.errors import AuditIntegrityError, CheckpointError

N = 10  # entries in each tampered log


def row(conn: sqlite3.Connection, seq: int) -> tuple[bytes, bytes, bytes]:
    found = conn.execute("SELECT prev_hash, hash, entry FROM audit_log WHERE seq = ?", (seq,))
    result: tuple[bytes, bytes, bytes] = found.fetchone()
    return result


def canonical(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def edited_entry(conn: sqlite3.Connection, seq: int, **changes: Any) -> bytes:
    envelope = json.loads(row(conn, seq)[2])
    envelope["data"]["op"] = "evil"
    envelope.update(changes)
    return canonical(envelope)


def set_row(conn: sqlite3.Connection, seq: int, entry: bytes, *, fix_hash: bool) -> None:
    prev_hash, old_hash, _ = row(conn, seq)
    new_hash = chain_hash(prev_hash, entry) if fix_hash else old_hash
    conn.execute("UPDATE audit_log SET entry = ?, hash = ? WHERE seq = ?", (entry, new_hash, seq))


def rechain_from(conn: sqlite3.Connection, seq: int) -> None:
    """Recompute every prev_hash and hash from ``seq`` on: a careful attacker."""
    prev = row(conn, seq - 1)[1] if seq > 1 else GENESIS_HASH
    for current, entry in conn.execute(
        "SELECT seq, entry FROM audit_log WHERE seq >= ? ORDER BY seq", (seq,)
    ).fetchall():
        new_hash = chain_hash(prev, entry)
        conn.execute(
            "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, new_hash, current)
        )
        prev = new_hash


def shift_up_from(conn: sqlite3.Connection, seq: int) -> None:
    # Two steps through negative numbers, so no UPDATE collides with the primary key.
    conn.execute("UPDATE audit_log SET seq = -(seq + 1) WHERE seq >= ?", (seq,))
    conn.execute("UPDATE audit_log SET seq = -seq WHERE seq < 0")


def forged_row(conn: sqlite3.Connection, seq: int, *, good_hash: bool) -> tuple[Any, ...]:
    prev = row(conn, seq - 1)[1]
    entry = canonical({"v": 1, "seq": seq, "time": 1, "kind": "admin", "data": {"op": "forged"}})
    return (seq, prev, chain_hash(prev, entry) if good_hash else b"\x01" * 32, entry)


def insert_forged_middle(conn: sqlite3.Connection, *, good_hash: bool) -> None:
    shift_up_from(conn, 5)
    conn.execute(
        "INSERT INTO audit_log VALUES (?, ?, ?, ?)", forged_row(conn, 5, good_hash=good_hash)
    )


def swap_rows(conn: sqlite3.Connection, a: int, b: int) -> None:
    conn.execute("UPDATE audit_log SET seq = -1 WHERE seq = ?", (a,))
    conn.execute("UPDATE audit_log SET seq = ? WHERE seq = ?", (a, b))
    conn.execute("UPDATE audit_log SET seq = ? WHERE seq = -1", (b,))


def insert_at_end_with_wrong_prev(conn: sqlite3.Connection) -> None:
    entry = canonical({"v": 1, "seq": N + 1, "time": 1, "kind": "admin", "data": {}})
    conn.execute(
        "INSERT INTO audit_log VALUES (?, ?, ?, ?)",
        (N + 1, GENESIS_HASH, chain_hash(GENESIS_HASH, entry), entry),
    )


def non_canonical(conn: sqlite3.Connection) -> None:
    envelope = json.loads(row(conn, 5)[2])
    set_row(conn, 5, json.dumps(envelope, sort_keys=True).encode(), fix_hash=True)


@dataclass(frozen=True)
class Tamper:
    do: Callable[[sqlite3.Connection], Any]
    seq: int
    what: str
    detail: str


TAMPERING: dict[str, Tamper] = {
    "edit-data": Tamper(
        lambda c: set_row(c, 5, edited_entry(c, 5), fix_hash=False), 5, "hash", "does not match"
    ),
    "edit-data-and-its-hash": Tamper(
        lambda c: set_row(c, 5, edited_entry(c, 5), fix_hash=True), 6, "prev_hash", "entry 5"
    ),
    "edit-kind": Tamper(
        lambda c: set_row(c, 5, edited_entry(c, 5, kind="admin"), fix_hash=False), 5, "hash", ""
    ),
    "edit-time": Tamper(
        lambda c: set_row(c, 5, edited_entry(c, 5, time=0), fix_hash=False), 5, "hash", ""
    ),
    "edit-hash": Tamper(
        lambda c: c.execute("UPDATE audit_log SET hash = zeroblob(32) WHERE seq = 5"),
        5,
        "hash",
        "",
    ),
    "edit-prev-hash": Tamper(
        lambda c: c.execute("UPDATE audit_log SET prev_hash = zeroblob(32) WHERE seq = 5"),
        5,
        "prev_hash",
        "",
    ),
    "first-prev-hash-not-genesis": Tamper(
        lambda c: c.execute("UPDATE audit_log SET prev_hash = randomblob(32) WHERE seq = 1"),
        1,
        "prev_hash",
        "genesis",
    ),
    "hash-stored-as-text": Tamper(
        lambda c: c.execute("UPDATE audit_log SET hash = hex(hash) WHERE seq = 5"), 5, "hash", ""
    ),
    "delete-first-row": Tamper(
        lambda c: c.execute("DELETE FROM audit_log WHERE seq = 1"), 1, "sequence", "missing"
    ),
    "delete-middle-row": Tamper(
        lambda c: c.execute("DELETE FROM audit_log WHERE seq = 5"), 5, "sequence", "entry 5"
    ),
    "delete-middle-rows-and-renumber": Tamper(
        lambda c: (
            c.execute("DELETE FROM audit_log WHERE seq = 5"),
            c.execute("UPDATE audit_log SET seq = seq - 1 WHERE seq > 5"),
        ),
        5,
        "encoding",
        "says seq 6",
    ),
    "insert-forged-row-in-the-middle": Tamper(
        lambda c: insert_forged_middle(c, good_hash=True), 6, "encoding", "says seq 5"
    ),
    "insert-forged-row-with-bad-hash": Tamper(
        lambda c: insert_forged_middle(c, good_hash=False), 5, "hash", ""
    ),
    "insert-row-at-end-with-wrong-prev": Tamper(
        insert_at_end_with_wrong_prev, N + 1, "prev_hash", ""
    ),
    "insert-row-before-the-first": Tamper(
        lambda c: c.execute(
            "INSERT INTO audit_log VALUES (0, zeroblob(32), zeroblob(32), x'7b7d')"
        ),
        0,
        "sequence",
        "seqs start at 1",
    ),
    "swap-two-rows": Tamper(lambda c: swap_rows(c, 4, 5), 4, "encoding", "says seq 5"),
    "non-canonical-bytes": Tamper(non_canonical, 5, "encoding", "not canonical"),
    "unknown-version": Tamper(
        lambda c: set_row(c, 5, edited_entry(c, 5, v=2), fix_hash=True),
        5,
        "encoding",
        "unknown entry version v=2",
    ),
    "entry-stored-as-text": Tamper(
        lambda c: c.execute("UPDATE audit_log SET entry = CAST(entry AS TEXT) WHERE seq = 5"),
        5,
        "encoding",
        "not a BLOB",
    ),
}


@pytest.fixture
def tampered_log(
    log_path: Path, clock: FakeClock
) -> Iterator[Callable[[Callable[..., Any]], AuditLog]]:
    opened: list[AuditLog] = []

    def make(do: Callable[[sqlite3.Connection], Any]) -> AuditLog:
        with AuditLog(log_path, clock=clock) as log:
            fill(log, N)
            assert verify_log(log).entries == N
        do(attacker(log_path))
        reopened = AuditLog(log_path, read_only=True)
        opened.append(reopened)
        return reopened

    yield make
    for log in opened:
        log.close()


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampering_is_caught_at_the_first_bad_entry(
    tampered_log: Callable[[Callable[..., Any]], AuditLog], case: str
) -> None:
    tamper = TAMPERING[case]
    log = tampered_log(tamper.do)
    with pytest.raises(AuditIntegrityError) as caught:
        verify_log(log)
    assert (caught.value.seq, caught.value.what) == (tamper.seq, tamper.what)
    assert tamper.detail in caught.value.detail


def test_hash_error_carries_the_recorded_and_calculated_hashes(
    tampered_log: Callable[[Callable[..., Any]], AuditLog],
) -> None:
    captured: dict[str, bytes] = {}

    def edit(conn: sqlite3.Connection) -> None:
        prev_hash, old_hash, _ = row(conn, 5)
        entry = edited_entry(conn, 5)
        captured.update(old=old_hash, new=chain_hash(prev_hash, entry))
        set_row(conn, 5, entry, fix_hash=False)

    with pytest.raises(AuditIntegrityError) as caught:
        verify_log(tampered_log(edit))
    assert caught.value.expected == captured["old"].hex()
    assert caught.value.calculated == captured["new"].hex()
    assert "seq 5: hash:" in str(caught.value)


def test_untampered_log_verifies(log: AuditLog) -> None:
    fill(log, N)
    seq, head = log.head()
    assert verify_log(log) == verify_log(log)
    report = verify_log(log)
    assert (report.entries, report.head_seq, report.head_hash, report.checkpoint_seq) == (
        N,
        seq,
        head,
        None,
    )


def test_empty_log_verifies(log: AuditLog) -> None:
    report = verify_log(log)
    assert (report.entries, report.head_seq, report.head_hash) == (0, 0, GENESIS_HASH)


# -- checkpoints ----------------------------------------------------------------


@pytest.fixture
def key(tmp_path: Path) -> CheckpointKey:
    return CheckpointKey.generate(tmp_path / "checkpoint.key", tmp_path / "checkpoint.pub")


def test_deleting_the_last_row_needs_a_checkpoint_to_be_seen(
    log_path: Path, clock: FakeClock, key: CheckpointKey
) -> None:
    with AuditLog(log_path, clock=clock) as log:
        fill(log, N)
        checkpoint = make_checkpoint(log, key, clock=clock)
    attacker(log_path).execute("DELETE FROM audit_log WHERE seq = ?", (N,))
    with AuditLog(log_path, read_only=True) as log:
        # A bare chain cannot tell a truncated log from a shorter one...
        assert verify_log(log).entries == N - 1
        # ...a checkpoint can.
        with pytest.raises(AuditIntegrityError) as caught:
            verify_log(log, checkpoint=checkpoint, public_key=key.public_key)
    assert (caught.value.seq, caught.value.what) == (N, "checkpoint")
    assert "truncated" in caught.value.detail
    assert caught.value.expected == checkpoint.head_hash.hex()


@pytest.mark.parametrize(
    ("checkpoint_at", "caught_at"),
    [(N, N), (7, 7), (5, 5), (4, None)],
)
def test_rewriting_the_chain_needs_a_checkpoint_to_be_seen(
    log_path: Path,
    clock: FakeClock,
    key: CheckpointKey,
    checkpoint_at: int,
    caught_at: int | None,
) -> None:
    with AuditLog(log_path, clock=clock) as log:
        fill(log, checkpoint_at)
        checkpoint = make_checkpoint(log, key, clock=clock)
        fill(log, N - checkpoint_at)
    conn = attacker(log_path)
    set_row(conn, 5, edited_entry(conn, 5), fix_hash=True)
    rechain_from(conn, 6)
    with AuditLog(log_path, read_only=True) as log:
        assert verify_log(log).entries == N  # consistent: the chain alone cannot tell
        if caught_at is None:
            # Entries after the checkpoint are not covered by it.
            report = verify_log(log, checkpoint=checkpoint, public_key=key.public_key)
            assert report.checkpoint_seq == checkpoint_at
            return
        with pytest.raises(AuditIntegrityError) as caught:
            verify_log(log, checkpoint=checkpoint, public_key=key.public_key)
    assert (caught.value.seq, caught.value.what) == (caught_at, "checkpoint")
    assert "rewritten" in caught.value.detail
    assert caught.value.expected == checkpoint.head_hash.hex()


def test_checkpoint_verifies_and_is_reported(log: AuditLog, key: CheckpointKey) -> None:
    fill(log, 3)
    checkpoint = make_checkpoint(log, key)
    fill(log, 2)
    report = verify_log(log, checkpoint=checkpoint, public_key=key.public_key)
    assert (report.entries, report.checkpoint_seq) == (5, 3)


def test_checkpoint_of_an_empty_log(log: AuditLog, key: CheckpointKey) -> None:
    checkpoint = make_checkpoint(log, key)
    assert (checkpoint.seq, checkpoint.head_hash) == (0, GENESIS_HASH)
    assert verify_log(log, checkpoint=checkpoint, public_key=key.public_key).checkpoint_seq == 0
    fill(log, 2)
    assert verify_log(log, checkpoint=checkpoint, public_key=key.public_key).entries == 2


def test_checkpoint_without_public_key_is_refused(log: AuditLog, key: CheckpointKey) -> None:
    with pytest.raises(CheckpointError, match="public key"):
        verify_log(log, checkpoint=make_checkpoint(log, key))


def test_checkpoint_with_the_wrong_key_is_refused(log: AuditLog, key: CheckpointKey) -> None:
    fill(log, 2)
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(CheckpointError, match="not by the given key"):
        verify_log(log, checkpoint=make_checkpoint(log, key), public_key=other)


def test_checkpoint_of_another_log_is_refused(
    log: AuditLog, key: CheckpointKey, tmp_path: Path
) -> None:
    with AuditLog(tmp_path / "other.db") as other:
        checkpoint = make_checkpoint(other, key)
    with pytest.raises(CheckpointError, match="is for audit log"):
        verify_log(log, checkpoint=checkpoint, public_key=key.public_key)


# -- progress and snapshot ------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "calls"),
    [
        (0, [(0, 0)]),
        (3, [(3, 3)]),
        (10_000, [(10_000, 10_000)]),
        (25_000, [(10_000, 25_000), (20_000, 25_000), (25_000, 25_000)]),
    ],
)
def test_progress_is_reported_every_10k_rows_and_at_the_end(
    log: AuditLog, entries: int, calls: list[tuple[int, int]]
) -> None:
    if entries:
        log.append_many([(EntryKind.OUTCOME, {"i": i}) for i in range(entries)])
    seen: list[tuple[int, int]] = []
    verify_log(log, progress=lambda done, total: seen.append((done, total)))
    assert seen == calls


def test_verify_reads_one_snapshot_while_others_append(log: AuditLog, log_path: Path) -> None:
    log.append_many([(EntryKind.OUTCOME, {"i": i}) for i in range(15_000)])
    with AuditLog(log_path) as writer:

        def append_meanwhile(done: int, total: int) -> None:
            writer.append(EntryKind.ADMIN, {"during": done})

        report = verify_log(log, progress=append_meanwhile)
    assert report.entries == 15_000
    assert verify_log(log).entries == 15_002
