"""Which SQLite admissions wait for the disk: a used nonce or a spend reservation
always does (synchronous=FULL); a batch that only takes rate need not (NORMAL),
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
