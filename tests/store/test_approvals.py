"""Approvals, as ``StateStore`` states them, on both backends: held, decided by a
human, used exactly once; and idempotency keys: NEW, SAME, CONFLICT."""

from __future__ import annotations

import secrets
import threading
import time

import pytest

from tests.store.conftest import open_store
from vertex_tools.errors import ApprovalError
from vertex_tools.store import StateStore
from vertex_tools.store.base import (
    ApprovalRequest,
    ApprovalState,
    IdempotencyClaim,
    PendingApprovalsFull,
)

TTL = 600.0
CAP = 20


def held(digest: str = "d1", now: float | None = None, holder: str = "tk_a") -> ApprovalRequest:
    start = time.time() if now is None else now
    return ApprovalRequest(
        approval_id=f"ap_{secrets.token_hex(6)}",
        token_id=holder,
        grant="payer",
        digest=digest,
        created=start,
        expires=start + TTL,
        request={"method": "POST", "upstream": "stripe", "path": "/v1/refunds", "amount": 500},
        taint=({"argument": "charge", "source": "issue #7"},),
    )


def test_a_new_request_is_held_pending_and_returned_again_while_pending(
    store: StateStore,
) -> None:
    now = time.time()
    first = store.approval_gate(held(now=now), now, max_pending=CAP)
    assert first.state is ApprovalState.PENDING
    assert first.request["amount"] == 500 and first.taint[0]["source"] == "issue #7"
    again = store.approval_gate(
        held(now=now + 1), now + 1, max_pending=CAP
    )  # same token and digest
    assert again.approval_id == first.approval_id and again.state is ApprovalState.PENDING
    other = store.approval_gate(held(digest="d2", now=now), now, max_pending=CAP)
    assert other.approval_id != first.approval_id
    assert store.get_approval(first.approval_id) == first


def test_an_approval_is_used_once_then_a_retry_is_held_anew(store: StateStore) -> None:
    now = time.time()
    pending = store.approval_gate(held(now=now), now, max_pending=CAP)
    decided = store.decide_approval(
        pending.approval_id, approve=True, now=now + 5, by="alice", note="ok"
    )
    assert decided.state is ApprovalState.APPROVED
    assert (decided.decided, decided.decided_by, decided.note) == (now + 5, "alice", "ok")
    assert decided.expires == pytest.approx(now + 5 + TTL)  # a fresh window from the decision
    used = store.approval_gate(held(now=now + 6), now + 6, max_pending=CAP)
    assert used.approval_id == pending.approval_id and used.state is ApprovalState.USED
    assert used.used == now + 6
    retry = store.approval_gate(held(now=now + 7), now + 7, max_pending=CAP)
    assert retry.state is ApprovalState.PENDING and retry.approval_id != pending.approval_id


def test_a_denied_request_stays_denied(store: StateStore) -> None:
    now = time.time()
    pending = store.approval_gate(held(now=now), now, max_pending=CAP)
    store.decide_approval(pending.approval_id, approve=False, now=now + 1, by="bob", note=None)
    again = store.approval_gate(held(now=now + 2), now + 2, max_pending=CAP)
    assert again.approval_id == pending.approval_id and again.state is ApprovalState.DENIED


def test_deciding_refuses_unknown_decided_and_expired(store: StateStore) -> None:
    now = time.time()
    with pytest.raises(ApprovalError, match="no approval"):
        store.decide_approval("ap_nope", approve=True, now=now, by="a", note=None)
    pending = store.approval_gate(held(now=now), now, max_pending=CAP)
    store.decide_approval(pending.approval_id, approve=True, now=now, by="a", note=None)
    with pytest.raises(ApprovalError, match="approved, not pending"):
        store.decide_approval(pending.approval_id, approve=False, now=now, by="a", note=None)
    old = store.approval_gate(held(digest="old", now=now - 2 * TTL), now - 2 * TTL, max_pending=CAP)
    with pytest.raises(ApprovalError, match="expired, not pending"):
        store.decide_approval(old.approval_id, approve=True, now=now, by="a", note=None)
    found = store.get_approval(old.approval_id)
    assert found is not None and found.state is ApprovalState.EXPIRED
    assert store.get_approval("ap_nope") is None


def test_an_expired_approval_is_not_used_and_the_request_is_held_anew(store: StateStore) -> None:
    now = time.time()
    pending = store.approval_gate(held(now=now), now, max_pending=CAP)
    store.decide_approval(pending.approval_id, approve=True, now=now, by="a", note=None)
    late = now + 2 * TTL
    fresh = store.approval_gate(held(now=late), late, max_pending=CAP)
    assert fresh.state is ApprovalState.PENDING and fresh.approval_id != pending.approval_id


def test_list_is_newest_first_and_filters_by_state(store: StateStore) -> None:
    now = time.time()
    a = store.approval_gate(held(digest="a", now=now), now, max_pending=CAP)
    b = store.approval_gate(held(digest="b", now=now + 1), now + 1, max_pending=CAP)
    store.decide_approval(a.approval_id, approve=False, now=now + 2, by="x", note=None)
    assert [r.approval_id for r in store.list_approvals()] == [b.approval_id, a.approval_id]
    assert [r.approval_id for r in store.list_approvals(ApprovalState.PENDING)] == [b.approval_id]
    assert [r.approval_id for r in store.list_approvals(ApprovalState.DENIED)] == [a.approval_id]


def test_a_token_holds_at_most_max_pending_new_requests(store: StateStore) -> None:
    now = time.time()
    first, second = (
        store.approval_gate(held(digest=d, now=now), now, max_pending=2) for d in ("a", "b")
    )
    with pytest.raises(PendingApprovalsFull) as info:
        store.approval_gate(held(digest="c", now=now + 1), now + 1, max_pending=2)
    assert (info.value.token_id, info.value.pending, info.value.limit) == ("tk_a", 2, 2)
    assert len(store.list_approvals()) == 2, "nothing is stored past the cap"
    # The same request again finds its approval: only a new hold counts against the cap.
    again = store.approval_gate(held(digest="a", now=now + 1), now + 1, max_pending=2)
    assert again.approval_id == first.approval_id and again.state is ApprovalState.PENDING
    # Another token has a cap of its own.
    other = store.approval_gate(held(digest="c", now=now, holder="tk_b"), now, max_pending=2)
    assert other.state is ApprovalState.PENDING
    # A decided approval no longer waits for a human: it frees a slot.
    store.decide_approval(second.approval_id, approve=False, now=now + 2, by="x", note=None)
    third = store.approval_gate(held(digest="c", now=now + 3), now + 3, max_pending=2)
    assert third.state is ApprovalState.PENDING
    with pytest.raises(PendingApprovalsFull):
        store.approval_gate(held(digest="d", now=now + 3), now + 3, max_pending=2)


def test_an_approved_request_is_used_even_when_the_token_is_at_its_cap(
    store: StateStore,
) -> None:
    now = time.time()
    pending = store.approval_gate(held(digest="a", now=now), now, max_pending=2)
    store.decide_approval(pending.approval_id, approve=True, now=now, by="x", note=None)
    store.approval_gate(held(digest="b", now=now), now, max_pending=2)
    store.approval_gate(held(digest="c", now=now), now, max_pending=2)
    used = store.approval_gate(held(digest="a", now=now + 1), now + 1, max_pending=2)
    assert used.approval_id == pending.approval_id and used.state is ApprovalState.USED


def test_expired_pending_approvals_do_not_count_against_the_cap(store: StateStore) -> None:
    now = time.time()
    old = now - 2 * TTL
    for digest in ("a", "b"):
        store.approval_gate(held(digest=digest, now=old), old, max_pending=2)
    fresh = store.approval_gate(held(digest="c", now=now), now, max_pending=2)
    assert fresh.state is ApprovalState.PENDING
    store.approval_gate(held(digest="d", now=now), now, max_pending=2)
    with pytest.raises(PendingApprovalsFull) as info:
        store.approval_gate(held(digest="e", now=now), now, max_pending=2)
    assert info.value.pending == 2


def _hold_from_thread(where: str, start: threading.Barrier, digest: str, out: list[bool]) -> None:
    s = open_store(where)
    try:
        start.wait()
        now = time.time()
        try:
            s.approval_gate(held(digest=digest, now=now), now, max_pending=3)
            out.append(True)
        except PendingApprovalsFull:
            out.append(False)
    finally:
        s.close()


def test_concurrent_new_holds_never_pass_the_cap_together(store_where: str) -> None:
    results: list[bool] = []
    start = threading.Barrier(8)
    threads = [
        threading.Thread(target=_hold_from_thread, args=(store_where, start, f"d{i}", results))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [False] * 5 + [True] * 3
    s = open_store(store_where)
    assert len(s.list_approvals(ApprovalState.PENDING)) == 3
    s.close()


def _use_from_thread(where: str, start: threading.Barrier, out: list[ApprovalState]) -> None:
    s = open_store(where)
    try:
        start.wait()
        now = time.time()
        out.append(s.approval_gate(held(now=now), now, max_pending=CAP).state)
    finally:
        s.close()


def test_concurrent_callers_never_both_use_one_approval(store_where: str) -> None:
    s = open_store(store_where)
    now = time.time()
    pending = s.approval_gate(held(now=now), now, max_pending=CAP)
    s.decide_approval(pending.approval_id, approve=True, now=now, by="a", note=None)
    s.close()
    results: list[ApprovalState] = []
    start = threading.Barrier(6)
    threads = [
        threading.Thread(target=_use_from_thread, args=(store_where, start, results))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 6
    assert results.count(ApprovalState.USED) == 1
    assert results.count(ApprovalState.PENDING) == 5  # every other caller: held anew (once)
    s = open_store(store_where)
    assert len(s.list_approvals(ApprovalState.PENDING)) == 1
    s.close()


def test_idempotency_key_new_same_conflict_and_expiry(store: StateStore) -> None:
    now = 1_800_000_000.0
    assert store.claim_idempotency("tk_a", "k1", "d1", now, 60) is IdempotencyClaim.NEW
    assert store.claim_idempotency("tk_a", "k1", "d1", now + 1, 60) is IdempotencyClaim.SAME
    assert store.claim_idempotency("tk_a", "k1", "d2", now + 1, 60) is IdempotencyClaim.CONFLICT
    # Keys are per token: another token's k1 is its own.
    assert store.claim_idempotency("tk_b", "k1", "d2", now + 1, 60) is IdempotencyClaim.NEW
    # Past its ttl the key is free again, for any request.
    assert store.claim_idempotency("tk_a", "k1", "d2", now + 61, 60) is IdempotencyClaim.NEW
    assert store.claim_idempotency("tk_a", "k1", "d2", now + 62, 60) is IdempotencyClaim.SAME
    store.prune(now + 200)
    assert store.claim_idempotency("tk_a", "k1", "d1", now + 201, 60) is IdempotencyClaim.NEW


def _claim_from_thread(
    where: str, start: threading.Barrier, digest: str, out: list[IdempotencyClaim]
) -> None:
    s = open_store(where)
    try:
        start.wait()
        out.append(s.claim_idempotency("tk_a", "race", digest, 1_800_000_000.0, 60))
    finally:
        s.close()


def test_concurrent_first_uses_of_a_key_make_one_new(store_where: str) -> None:
    results: list[IdempotencyClaim] = []
    start = threading.Barrier(6)
    threads = [
        threading.Thread(target=_claim_from_thread, args=(store_where, start, "d", results))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == sorted([IdempotencyClaim.NEW] + [IdempotencyClaim.SAME] * 5)
