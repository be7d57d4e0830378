"""Approvals and agent idempotency keys in the state store: the rules a held request
and an SDK's retried POST rely on, on a real SQLite file, across threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vertex_tools.errors import ApprovalError
from vertex_tools.store import (
    ApprovalRequest,
    ApprovalState,
    IdempotencyClaim,
    SqliteStore,
)

NOW = time.time()  # get/list judge expiry by the wall clock


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "vertex.db")
    yield s
    s.close()


def held(
    n: int = 1,
    *,
    digest: str = "d1",
    token: str = "tk_a",  # noqa: S107
    at: float = NOW,
) -> ApprovalRequest:
    return ApprovalRequest(
        approval_id=f"ap_{n:016d}",
        token_id=token,
        grant="payer",
        digest=digest,
        created=at,
        expires=at + 3600,
        request={"method": "POST", "path": "/v1/refunds", "amount": 500},
        taint=({"argument": "charge", "sources": ["stripe customers.retrieve description"]},),
    )


def test_a_new_request_is_held_pending_and_asking_again_finds_the_same(store: SqliteStore) -> None:
    first = store.approval_gate(held(1), NOW)
    assert first.state is ApprovalState.PENDING
    assert first.request["amount"] == 500 and first.taint[0]["argument"] == "charge"
    second = store.approval_gate(held(2), NOW + 1)
    assert second.approval_id == first.approval_id, "one pending approval per exact request"
    assert [a.approval_id for a in store.list_approvals(ApprovalState.PENDING)] == [
        first.approval_id
    ]


def test_an_approval_is_used_once(store: SqliteStore) -> None:
    store.approval_gate(held(1), NOW)
    approved = store.decide_approval(
        "ap_0000000000000001", approve=True, now=NOW + 5, by="ops", note="ok"
    )
    assert approved.state is ApprovalState.APPROVED and approved.decided_by == "ops"
    used = store.approval_gate(held(2), NOW + 6)
    assert used.state is ApprovalState.USED and used.approval_id == approved.approval_id
    again = store.approval_gate(held(3), NOW + 7)
    assert again.state is ApprovalState.PENDING and again.approval_id == "ap_0000000000000003"


def test_an_approval_binds_the_token_and_the_exact_request(store: SqliteStore) -> None:
    store.approval_gate(held(1), NOW)
    store.decide_approval("ap_0000000000000001", approve=True, now=NOW, by="ops", note=None)
    other_request = store.approval_gate(held(2, digest="d2"), NOW + 1)
    other_token = store.approval_gate(held(3, token="tk_b"), NOW + 1)
    assert other_request.state is ApprovalState.PENDING
    assert other_token.state is ApprovalState.PENDING
    assert store.approval_gate(held(4), NOW + 2).state is ApprovalState.USED


def test_a_denied_request_stays_denied(store: SqliteStore) -> None:
    store.approval_gate(held(1), NOW)
    store.decide_approval("ap_0000000000000001", approve=False, now=NOW, by="ops", note="no")
    denied = store.approval_gate(held(2), NOW + 1)
    assert denied.state is ApprovalState.DENIED and denied.note == "no"


def test_only_a_pending_approval_can_be_decided(store: SqliteStore) -> None:
    with pytest.raises(ApprovalError, match="no approval"):
        store.decide_approval("ap_missing", approve=True, now=NOW, by="ops", note=None)
    store.approval_gate(held(1), NOW)
    store.decide_approval("ap_0000000000000001", approve=False, now=NOW, by="ops", note=None)
    with pytest.raises(ApprovalError, match="is denied, not pending"):
        store.decide_approval("ap_0000000000000001", approve=True, now=NOW, by="ops", note=None)


def test_expired_approvals_are_neither_decided_nor_used(store: SqliteStore) -> None:
    old = NOW - 7200
    store.approval_gate(held(1, at=old), old)
    assert store.get_approval("ap_0000000000000001").state is ApprovalState.EXPIRED  # type: ignore[union-attr]
    with pytest.raises(ApprovalError, match="expired"):
        store.decide_approval("ap_0000000000000001", approve=True, now=NOW, by="ops", note=None)
    fresh = store.approval_gate(held(2), NOW)
    assert fresh.approval_id == "ap_0000000000000002" and fresh.state is ApprovalState.PENDING


def test_an_approval_unused_past_its_window_expires(store: SqliteStore) -> None:
    store.approval_gate(held(1), NOW)
    store.decide_approval("ap_0000000000000001", approve=True, now=NOW, by="ops", note=None)
    late = store.approval_gate(held(2, at=NOW + 3601), NOW + 3601)
    assert late.state is ApprovalState.PENDING and late.approval_id == "ap_0000000000000002"


def test_two_retries_racing_use_an_approval_once(tmp_path: Path) -> None:
    path = tmp_path / "vertex.db"
    with SqliteStore(path) as setup:
        setup.approval_gate(held(1), NOW)
        setup.decide_approval("ap_0000000000000001", approve=True, now=NOW, by="ops", note=None)
    stores = [SqliteStore(path) for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    states: list[ApprovalState] = []

    def retry(i: int) -> None:
        barrier.wait()
        states.append(stores[i].approval_gate(held(10 + i), NOW + 1).state)

    threads = [threading.Thread(target=retry, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert states.count(ApprovalState.USED) == 1
    assert states.count(ApprovalState.PENDING) == len(stores) - 1


def test_an_idempotency_key_is_bound_to_its_request(store: SqliteStore) -> None:
    assert store.claim_idempotency("tk_a", "k1", "d1", NOW, 60) is IdempotencyClaim.NEW
    assert store.claim_idempotency("tk_a", "k1", "d1", NOW + 1, 60) is IdempotencyClaim.SAME
    assert store.claim_idempotency("tk_a", "k1", "d2", NOW + 2, 60) is IdempotencyClaim.CONFLICT
    # Keys are per token, and expire.
    assert store.claim_idempotency("tk_b", "k1", "d2", NOW + 3, 60) is IdempotencyClaim.NEW
    assert store.claim_idempotency("tk_a", "k1", "d2", NOW + 61, 60) is IdempotencyClaim.NEW
    store.prune(NOW + 200)
    assert store.claim_idempotency("tk_a", "k1", "d3", NOW + 201, 60) is IdempotencyClaim.NEW
