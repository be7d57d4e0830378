"""The state store contract, run against SQLite and PostgreSQL alike (conftest.py):
the semantics the ``StateStore`` docstrings state, and admission that is atomic
across threads and processes."""

from __future__ import annotations

import multiprocessing

from tests.store.conftest import open_store
from vertex_tools.decision import Reason
from vertex_tools.policy.durations import Rate
from vertex_tools.store import Admission, RateKey, SpendRequest, StateStore
from vertex_tools.tokens import mint_token

NOW = 1_800_000_000.0


def test_tokens_round_trip_and_revoke(store: StateStore) -> None:
    issued = mint_token("g", now=NOW, ttl=60)
    store.add_token(issued.record)
    assert store.get_token(issued.record.token_id) == issued.record
    assert store.get_token("tk_bbbbbbbbbbbbbbbb") is None
    revoked = store.revoke_token(issued.record.token_id, NOW + 5)
    assert revoked is not None and revoked.revoked == NOW + 5
    again = store.revoke_token(issued.record.token_id, NOW + 9)
    assert again is not None and again.revoked == NOW + 5  # first revocation time kept
    assert store.revoke_token("tk_bbbbbbbbbbbbbbbb", NOW) is None


def test_a_nonce_is_accepted_once(store: StateStore) -> None:
    admission = Admission(token_id="tk_x", now=NOW, nonce="abc", nonce_expires=NOW + 600)
    assert store.admit(admission).admitted
    again = store.admit(admission)
    assert again.reason is Reason.REPLAYED_REQUEST


def test_rate_limit_allows_a_burst_then_refuses_until_time_passes(store: StateStore) -> None:
    bucket = RateKey("token:t", Rate(5, 1), "grants.g.rate")
    results = [store.admit(Admission("t", NOW, rates=(bucket,))) for _ in range(7)]
    assert [r.admitted for r in results] == [True] * 5 + [False, False]
    assert results[5].reason is Reason.RATE_LIMITED and results[5].rule == "grants.g.rate"
    assert results[5].retry_after is not None and 0 < results[5].retry_after <= 0.2 + 1e-6
    assert store.admit(Admission("t", NOW + 0.21, rates=(bucket,))).admitted


def test_spend_window_refuses_past_the_ceiling_and_release_frees_it(store: StateStore) -> None:
    def spend(amount: int, now: float = NOW) -> Admission:
        return Admission("t", now, spend=SpendRequest("g", "usd", amount, 1000, "grants.g.spend"))

    first = store.admit(spend(600))
    assert first.reservation is not None
    refused = store.admit(spend(500))
    assert refused.reason is Reason.SPEND_WINDOW_EXCEEDED
    assert refused.details == {"used": 600, "limit": 1000}
    store.settle(first.reservation, commit=False, now=NOW)
    ok = store.admit(spend(500))
    assert ok.admitted and ok.reservation is not None
    store.settle(ok.reservation, commit=True, now=NOW)
    store.settle(ok.reservation, commit=False, now=NOW)  # settling twice changes nothing
    assert store.spend_used("g", "usd", NOW - 86400) == 500
    # A rolling 24 hours: a day later the window is empty again.
    assert store.admit(spend(1000, NOW + 86401)).admitted


def test_a_refused_spend_takes_no_rate(store: StateStore) -> None:
    bucket = RateKey("token:t", Rate(1, 60), "grants.g.rate")
    over = Admission("t", NOW, rates=(bucket,), spend=SpendRequest("g", "usd", 5, 1, "r"))
    assert store.admit(over).reason is Reason.SPEND_WINDOW_EXCEEDED
    assert store.admit(Admission("t", NOW, rates=(bucket,))).admitted


def _hammer(where: str, n: int, out: multiprocessing.Queue[int]) -> None:
    s = open_store(where)
    admitted = 0
    for _ in range(n):
        r = s.admit(Admission("t", NOW, spend=SpendRequest("g", "usd", 7, 1000, "r")))
        admitted += r.admitted
    s.close()
    out.put(admitted)


def test_concurrent_processes_never_pass_the_ceiling_together(store_where: str) -> None:
    queue: multiprocessing.Queue[int] = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=_hammer, args=(store_where, 100, queue)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    admitted = sum(queue.get(timeout=5) for _ in procs)
    assert admitted == 1000 // 7  # 142 reservations of 7 fit under 1000, never 143
    s = open_store(store_where)
    assert s.spend_used("g", "usd", NOW - 1) == 142 * 7
    s.close()


def test_an_orphan_is_claimed_once(store: StateStore) -> None:
    assert store.claim_orphan("req-1", NOW)
    assert not store.claim_orphan("req-1", NOW + 1)
    assert store.claim_orphan("req-2", NOW)


def test_list_tokens_is_newest_first(store: StateStore) -> None:
    older = mint_token("g", now=NOW, ttl=60)
    newer = mint_token("g", now=NOW + 1, ttl=60)
    store.add_token(older.record)
    store.add_token(newer.record)
    assert [r.token_id for r in store.list_tokens()] == [
        newer.record.token_id,
        older.record.token_id,
    ]


def test_prune_drops_expired_nonces_so_they_could_be_reused(store: StateStore) -> None:
    admission = Admission(token_id="tk_x", now=NOW, nonce="n", nonce_expires=NOW + 10)
    assert store.admit(admission).admitted
    store.prune(NOW + 5)  # not expired yet: still a replay
    assert store.admit(admission).reason is Reason.REPLAYED_REQUEST
    store.prune(NOW + 11)
    assert store.admit(admission).admitted


def test_admission_updates_last_used(store: StateStore) -> None:
    issued = mint_token("g", now=NOW, ttl=600)
    store.add_token(issued.record)
    assert store.admit(Admission(issued.record.token_id, NOW + 3)).admitted
    record = store.get_token(issued.record.token_id)
    assert record is not None and record.last_used == NOW + 3


def _rate_hammer(where: str, n: int, out: multiprocessing.Queue[int]) -> None:
    s = open_store(where)
    bucket = RateKey("grant:g", Rate(10, 3600), "grants.g.rate.per_grant")
    admitted = sum(s.admit(Admission("t", NOW, rates=(bucket,))).admitted for _ in range(n))
    s.close()
    out.put(admitted)


def test_concurrent_processes_never_pass_a_rate_limit_together(store_where: str) -> None:
    queue: multiprocessing.Queue[int] = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=_rate_hammer, args=(store_where, 10, queue))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert sum(queue.get(timeout=5) for _ in procs) == 10  # the burst, shared by all four


def test_admit_many_gives_what_one_at_a_time_gives(store: StateStore) -> None:
    # One batch (one transaction on SQLite): each admission sees what the ones
    # before it took, so together they pass no nonce, rate or spend check.
    bucket = RateKey("token:t", Rate(3, 60), "grants.g.rate")
    spend = SpendRequest("g", "usd", 400, 1000, "grants.g.spend")
    batch = [
        Admission("t", NOW, nonce="n1", nonce_expires=NOW + 600),
        Admission("t", NOW, nonce="n1", nonce_expires=NOW + 600),
        *(Admission("t", NOW, rates=(bucket,)) for _ in range(4)),
        *(Admission("u", NOW, spend=spend) for _ in range(3)),
    ]
    results = store.admit_many(batch)
    assert [r.reason for r in results] == [
        None,
        Reason.REPLAYED_REQUEST,
        None,
        None,
        None,
        Reason.RATE_LIMITED,
        None,
        None,
        Reason.SPEND_WINDOW_EXCEEDED,
    ]
    assert results[8].details == {"used": 800, "limit": 1000}
    reservations = [r.reservation for r in results[6:8]]
    assert None not in reservations and len(set(reservations)) == 2
    assert store.spend_used("g", "usd", NOW - 86400) == 800
    assert store.admit_many([]) == []


def _batch_hammer(where: str, n: int, out: multiprocessing.Queue[int]) -> None:
    store = open_store(where)
    spend = SpendRequest("g", "usd", 10, 500, "grants.g.spend")
    admitted = 0
    for _ in range(n):
        results = store.admit_many([Admission("t", NOW, spend=spend) for _ in range(5)])
        admitted += sum(r.admitted for r in results)
    store.close()
    out.put(admitted)


def test_concurrent_batches_never_pass_the_ceiling_together(store_where: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[int] = ctx.Queue()
    procs = [ctx.Process(target=_batch_hammer, args=(store_where, 8, out)) for _ in range(3)]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert total == 50  # 500 / 10, out of 120 asked for
