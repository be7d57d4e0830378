"""SQLite group commit: a batch of admissions in one transaction leaves the store
exactly as the same admissions one at a time would (results, buckets, last use)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from vertex_tools.policy.durations import Rate
from vertex_tools.store import Admission, RateKey, SpendRequest, SqliteStore
from vertex_tools.tokens import mint_token

NOW = 1_800_000_000.0
BUCKETS = (
    RateKey("token:a", Rate(3, 60), "grants.g.rate"),
    RateKey("grant:g", Rate(4, 1), "grants.g.rate.per_grant"),
)
SPEND = SpendRequest("g", "usd", 300, 1000, "grants.g.spend")

admissions = st.lists(
    st.tuples(
        st.integers(0, 1),  # which token
        st.sampled_from([0.0, 0.0, 0.1, 0.5, 20.0]),  # time since the one before
        st.sets(st.integers(0, 1)).map(lambda s: tuple(BUCKETS[i] for i in sorted(s))),
        st.booleans(),  # spend
        st.one_of(st.none(), st.sampled_from(["n1", "n2", "n3"])),  # nonce
    ),
    min_size=1,
    max_size=25,
)


def _store(root: Path, name: str) -> tuple[SqliteStore, list[str]]:
    store = SqliteStore(root / f"{name}.db")
    ids = []
    for _ in range(2):
        issued = mint_token("g", now=NOW, ttl=3600)
        store.add_token(issued.record)
        ids.append(issued.record.token_id)
    return store, ids


@settings(max_examples=150, deadline=None)
@given(admissions)
def test_a_batch_leaves_what_one_at_a_time_leaves(
    steps: list[tuple[int, float, tuple[RateKey, ...], bool, str | None]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        batched, ids = _store(root, "batched")
        single, single_ids = _store(root, "single")
        now = NOW
        batch, one_by_one = [], []
        for who, wait, rates, spends, nonce in steps:
            now += wait
            common = {
                "now": now,
                "rates": rates,
                "spend": SPEND if spends else None,
                "nonce": nonce,
                "nonce_expires": now + 600,
            }
            batch.append(Admission(ids[who], **common))  # type: ignore[arg-type]
            one_by_one.append(Admission(single_ids[who], **common))  # type: ignore[arg-type]
        got = batched.admit_many(batch)
        expected = [single.admit_many([admission])[0] for admission in one_by_one]
        assert [(r.reason, r.details) for r in got] == [(r.reason, r.details) for r in expected]
        assert [r.reservation is None for r in got] == [r.reservation is None for r in expected]
        for mine, theirs in zip(ids, single_ids, strict=True):
            a, b = batched.get_token(mine), single.get_token(theirs)
            assert a is not None and b is not None and a.last_used == b.last_used
        # The buckets as stored: the next call at each time is admitted or refused alike.
        for later in (now, now + 0.5, now + 30):
            probe = [Admission(ids[0], later, rates=BUCKETS)]
            again = [Admission(single_ids[0], later, rates=BUCKETS)]
            assert batched.admit_many(probe)[0].reason == single.admit_many(again)[0].reason
        batched.close()
        single.close()


def test_a_tokens_last_use_is_the_latest_of_its_batch(tmp_path: Path) -> None:
    """Concurrent calls read the clock before they queue: a batch may hold them out
    of order, and the token's last use is still the latest of them."""
    store, ids = _store(tmp_path, "s")
    store.admit_many([Admission(ids[0], NOW + 5), Admission(ids[0], NOW + 1)])
    record = store.get_token(ids[0])
    assert record is not None and record.last_used == NOW + 5
    store.close()
