"""The answer goes out before its outcome entry is committed (pipeline._outcome);
a broker stopped right after answering still writes every queued outcome, and the
log verifies. (A broker killed before the commit leaves the intent open: the next
broker records it as orphaned, test_reconcile.py.)"""

from __future__ import annotations

import collections

import pytest

from tests.conftest import make_deployment
from vertex_tools import BrokerRefused
from vertex_tools.audit import AuditLog, EntryKind, verify_log
from vertex_tools.demo.echo import EchoServer


def test_outcomes_queued_when_the_broker_stops_are_written(
    tmp_path_factory: pytest.TempPathFactory, upstream: EchoServer
) -> None:
    dep = make_deployment(tmp_path_factory.mktemp("stop"), upstream)
    issued = dep.issue("echo-writer")  # 5/second: the later calls are refused (429)
    broker = dep.broker()
    broker.start()
    answered: list[tuple[str, int]] = []
    refused = 0
    try:
        with broker.client(issued.token) as client:
            for i in range(8):
                try:
                    answer = client.get("echo", f"/items/{i}")
                    answered.append((answer.headers["vertex-request-id"], answer.status_code))
                except BrokerRefused:
                    refused += 1
    finally:
        broker.stop()  # at once: the last outcomes may still be queued
    assert answered and refused and len(answered) + refused == 8
    # Read straight after the broker exited: no waiting for the outcome here.
    with AuditLog(dep.home.audit_db, read_only=True) as log:
        records = list(log.records())
        assert verify_log(log).entries == len(records)
    calls = [r for r in records if r.kind in (EntryKind.INTENT, EntryKind.OUTCOME)]
    kinds = collections.defaultdict(list)
    for r in calls:
        kinds[r.data["request_id"]].append(r.kind)
    assert len(kinds) == 8
    assert all(k == [EntryKind.INTENT, EntryKind.OUTCOME] for k in kinds.values()), kinds
    outcomes = [r for r in calls if r.kind is EntryKind.OUTCOME]
    statuses = {r.data["request_id"]: r.data["status"] for r in outcomes}
    assert all(statuses[request_id] == status for request_id, status in answered)
    assert list(statuses.values()).count(429) == refused
