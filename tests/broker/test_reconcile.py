"""A broker killed mid-call leaves an intent without an outcome; the next broker
to start records it as orphaned, exactly once, and the chain still verifies."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_deployment
from vertex_tools import BrokerUnavailable
from vertex_tools.audit import AuditLog, EntryKind, verify_log
from vertex_tools.broker.reconcile import HOST, find_orphans
from vertex_tools.demo.echo import EchoServer


def _log(tmp_path: Path, entries: list[tuple[EntryKind, dict[str, Any]]]) -> AuditLog:
    log = AuditLog(tmp_path / "audit.db")
    log.append_many(entries)
    return log


def start(broker: str, pid: int, host: str = HOST) -> tuple[EntryKind, dict[str, Any]]:
    return EntryKind.ADMIN, {"action": "broker_start", "broker": broker, "pid": pid, "host": host}


def intent(rid: str, broker: str) -> tuple[EntryKind, dict[str, Any]]:
    return EntryKind.INTENT, {"request_id": rid, "broker": broker, "effect": "allow"}


def outcome(rid: str) -> tuple[EntryKind, dict[str, Any]]:
    return EntryKind.OUTCOME, {"request_id": rid, "status": 200}


def test_only_open_intents_of_gone_brokers_are_orphans(tmp_path: Path) -> None:
    dead_pid = 2**22 + 7  # above pid_max on Linux by default: never a live process
    entries = [
        start("dead", dead_pid),
        start("live", os.getpid()),
        start("remote", dead_pid, host="another-host"),
        intent("a", "dead"),
        outcome("a"),  # closed: not an orphan
        intent("b", "dead"),  # open, broker gone: orphan
        intent("c", "live"),  # open, broker running: in flight
        intent("d", "remote"),  # another host's broker: not ours to judge
        intent("e", "me"),  # this broker's own
        intent("f", "unknown"),  # its start is older than the window: gone
    ]
    with _log(tmp_path, entries) as log:
        orphans = find_orphans(log.records(), current="me")
    assert [o.request_id for o in orphans] == ["b", "f"]


def test_a_broker_killed_mid_call_is_reconciled_by_the_next(
    tmp_path_factory: pytest.TempPathFactory, upstream: EchoServer
) -> None:
    dep = make_deployment(tmp_path_factory.mktemp("sigkill"), upstream)
    text = dep.home.policy.read_text().replace('read_timeout = "2s"', 'read_timeout = "30s"')
    dep.home.policy.write_text(text)
    issued = dep.issue("reader")
    broker = dep.broker()
    broker.start()
    pid = broker.pid
    assert pid is not None
    client = broker.client(issued.token)
    failures: list[BaseException] = []

    def slow_call() -> None:
        try:
            client.get("echo", "/slow", params={"seconds": "20"})
        except BrokerUnavailable as exc:
            failures.append(exc)

    caller = threading.Thread(target=slow_call)
    caller.start()
    # Wait until the intent is durable and the call has reached the upstream.
    deadline = time.monotonic() + 15
    request_id = None
    while request_id is None and time.monotonic() < deadline:
        with AuditLog(dep.home.audit_db, read_only=True) as log:
            for r in log.records():
                if r.kind is EntryKind.INTENT and r.data.get("path") == "/slow":
                    request_id = str(r.data["request_id"])
        if request_id is None or not any(x.path == "/slow" for x in upstream.received):
            request_id = None
            time.sleep(0.05)
    assert request_id is not None, "the slow call never got going"
    os.kill(pid, signal.SIGKILL)
    caller.join(timeout=30)
    assert failures, "the caller should see the broker vanish"
    broker.stop()  # already dead: only reaps it

    # The next broker reconciles; one more finds nothing left to do.
    with dep.broker() as again, dep.broker():
        assert again.url is not None
    with AuditLog(dep.home.audit_db, read_only=True) as log:
        outcomes = [
            r
            for r in log.records()
            if r.kind is EntryKind.OUTCOME and r.data.get("request_id") == request_id
        ]
        assert len(outcomes) == 1
        assert (outcomes[0].data["reason"], outcomes[0].data["status"]) == ("orphaned", 0)
        assert verify_log(log).entries > 0
