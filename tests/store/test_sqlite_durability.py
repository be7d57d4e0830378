"""Which SQLite admissions wait for the disk: a spend reservation or an unlogged nonce
always does (synchronous=FULL); a batch that only takes rate or uses nonces the broker
logs in its intent entries need not (NORMAL),
and a write after it is durable again. The mode is read back from the connection
the store commits on, right after each commit."""

from __future__ import annotations

from pathlib import Path

from vertex_tools.policy.durations import Rate
from vertex_tools.store import Admission, RateKey, SpendRequest, SqliteStore
from vertex_tools.tokens import mint_token

NOW = 1_800_000_000.0
FULL, NORMAL = 2, 1
RATE = RateKey("token:t", Rate(1000, 1), "grants.g.rate")


def _synchronous(store: SqliteStore) -> int:
    mode: int = store._conn.execute("PRAGMA synchronous").fetchone()[0]
    return mode


def test_only_rate_only_batches_commit_without_waiting_for_the_disk(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "vertex.db")
    try:
        assert _synchronous(store) == FULL
        store.admit_many([Admission("t", NOW, rates=(RATE,)) for _ in range(3)])
        assert _synchronous(store) == NORMAL
        spend = SpendRequest("g", "usd", 5, 100, "grants.g.spend")
        # One reservation or one nonce in a batch makes the whole batch durable.
        store.admit_many([Admission("t", NOW, rates=(RATE,)), Admission("t", NOW, spend=spend)])
        assert _synchronous(store) == FULL
        store.admit_many([Admission("t", NOW, rates=(RATE,))])
        store.admit_many([Admission("t", NOW, nonce="n", nonce_expires=NOW + 60)])
        assert _synchronous(store) == FULL
        store.admit_many([Admission("t", NOW, rates=(RATE,))])
        store.add_token(mint_token("g", now=NOW, ttl=60).record)  # every other write: FULL
        assert _synchronous(store) == FULL
    finally:
        store.close()
    # Nothing was lost by the process: a reopened store sees every admission.
    again = SqliteStore(tmp_path / "vertex.db")
    try:
        assert again.spend_used("g", "usd", NOW - 1) == 5
        assert not again.admit(Admission("t", NOW, nonce="n", nonce_expires=NOW + 60)).admitted
    finally:
        again.close()


def test_a_logged_nonce_commits_without_waiting_for_the_disk(tmp_path: Path) -> None:
    """A nonce the broker also writes into its (durable) intent entry needs no flush of
    its own; an unlogged nonce and any spend reservation still get one."""
    store = SqliteStore(tmp_path / "vertex.db")
    try:
        logged = [
            Admission("t", NOW, nonce=f"n{i}", nonce_expires=NOW + 60, nonce_logged=True)
            for i in range(3)
        ]
        store.admit_many(logged)
        assert _synchronous(store) == NORMAL
        store.admit_many([Admission("t", NOW, nonce="u", nonce_expires=NOW + 60)])
        assert _synchronous(store) == FULL
        store.admit_many(
            [
                Admission(
                    "t", NOW, nonce="r", nonce_expires=NOW + 60, nonce_logged=True, rates=(RATE,)
                )
            ]
        )
        assert _synchronous(store) == NORMAL
        spend = SpendRequest("g", "usd", 5, 100, "grants.g.spend")
        store.admit_many(
            [Admission("t", NOW, nonce="s", nonce_expires=NOW + 60, nonce_logged=True, spend=spend)]
        )
        assert _synchronous(store) == FULL
        # Used is used, however it was committed.
        again = Admission("t", NOW, nonce="n1", nonce_expires=NOW + 60, nonce_logged=True)
        assert not store.admit(again).admitted
    finally:
        store.close()


def test_restored_nonces_are_refused_and_expired_ones_are_not_put_back(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "vertex.db")
    try:
        store.admit(Admission("t", NOW, nonce="kept", nonce_expires=NOW + 60))
        used = [("t", "kept", NOW + 61), ("t", "lost", NOW + 60), ("t", "old", NOW - 1)]
        assert store.restore_nonces(used, NOW) == 1
        for nonce in ("kept", "lost"):
            assert not store.admit(
                Admission("t", NOW, nonce=nonce, nonce_expires=NOW + 60)
            ).admitted
        assert store.admit(Admission("t", NOW, nonce="old", nonce_expires=NOW + 60)).admitted
        store.sync()  # flushes the write-ahead log; nothing to see but that it works
    finally:
        store.close()
