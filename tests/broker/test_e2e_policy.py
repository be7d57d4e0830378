"""Policy, rate, spend and reload against a real broker process."""

from __future__ import annotations

import concurrent.futures
import time

import pytest

from tests.conftest import Deployment, make_deployment
from vertex_tools import BrokerRefused
from vertex_tools.demo.echo import EchoServer
from vertex_tools.local import LocalBroker
from vertex_tools.store import SqliteStore


def reason(exc: pytest.ExceptionInfo[BrokerRefused]) -> str:
    return exc.value.decision.reason.value


def test_not_allowed_is_403_with_reason_rule_and_nothing_forwarded(
    deployment: Deployment, broker: LocalBroker
) -> None:
    issued = deployment.issue("echo-writer")
    before = len(deployment.upstream.received)
    with broker.client(issued.token) as client, pytest.raises(BrokerRefused) as info:
        client.delete("echo", "/items/1")
    assert info.value.status == 403
    assert reason(info) == "not_allowed"
    assert info.value.decision.rule == "grants.echo-writer.allow"
    assert len(deployment.upstream.received) == before


def test_per_call_ceiling(deployment: Deployment, broker: LocalBroker) -> None:
    issued = deployment.issue("echo-writer")
    with broker.client(issued.token) as client, pytest.raises(BrokerRefused) as info:
        client.post("echo", "/items", json={"amount": 5001})
    assert reason(info) == "spend_per_call_exceeded"
    assert info.value.decision.rule == "grants.echo-writer.spend.per_call"


def test_rate_limit_per_token_is_429_with_retry_after(
    deployment: Deployment, broker: LocalBroker
) -> None:
    issued = deployment.issue("slow-rate")
    with broker.client(issued.token) as client:
        assert client.get("echo", "/items/1").status_code == 200
        assert client.get("echo", "/items/1").status_code == 200
        with pytest.raises(BrokerRefused) as info:
            client.get("echo", "/items/1")
    assert info.value.status == 429 and reason(info) == "rate_limited"
    # Another token of the same grant has its own bucket.
    other = deployment.issue("slow-rate")
    with broker.client(other.token) as client:
        assert client.get("echo", "/items/1").status_code == 200


def test_rate_limit_per_grant_counts_every_token(
    deployment: Deployment, broker: LocalBroker
) -> None:
    tokens = [deployment.issue("team") for _ in range(4)]
    outcomes = []
    for issued in tokens:
        with broker.client(issued.token) as client:
            try:
                outcomes.append(client.get("echo", "/items/1").status_code)
            except BrokerRefused as exc:
                outcomes.append(exc.status)
    assert outcomes == [200, 200, 200, 429]


def test_concurrent_spend_never_passes_the_daily_ceiling(
    deployment: Deployment, broker: LocalBroker
) -> None:
    # per_day = 6000, per_call = 5000: 20 concurrent calls of 1000 -> exactly 6 pass.
    tokens = [deployment.issue("spender") for _ in range(4)]

    def call(i: int) -> str:
        with broker.client(tokens[i % 4].token) as client:
            try:
                client.post("echo", "/items", json={"amount": 1000})
                return "ok"
            except BrokerRefused as exc:
                return exc.decision.reason.value

    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(call, range(20)))
    assert results.count("ok") == 6
    assert results.count("spend_window_exceeded") == 14
    store = SqliteStore(deployment.home.state_db)
    assert store.spend_used("spender", "usd", time.time() - 3600) == 6000
    store.close()


def test_failed_upstream_call_releases_its_reservation(
    tmp_path_factory: pytest.TempPathFactory, upstream: EchoServer
) -> None:
    dep = make_deployment(tmp_path_factory.mktemp("spend"), upstream)
    text = dep.home.policy.read_text()
    dep.home.policy.write_text(
        text.replace(
            '{ method = "POST", path = "/items" } ]',
            '{ method = "POST", path = "/items" }, { method = "POST", path = "/nowhere" } ]',
            1,
        )
    )
    issued = dep.issue("echo-writer")
    with dep.broker() as broker, broker.client(issued.token) as client:
        response = client.post("echo", "/nowhere", json={"amount": 4000})
        assert response.status_code == 404  # the upstream failed the call
        assert dep.outcome(response.headers["vertex-request-id"])["spend"] == "released"
        ok = client.post("echo", "/items", json={"amount": 4000})
        assert dep.outcome(ok.headers["vertex-request-id"])["spend"] == "committed"
    store = SqliteStore(dep.home.state_db)
    assert store.spend_used("echo-writer", "usd", time.time() - 3600) == 4000
    store.close()


def test_reload_applies_a_valid_policy_and_keeps_serving_on_an_invalid_one(
    tmp_path_factory: pytest.TempPathFactory, upstream: EchoServer
) -> None:
    dep = make_deployment(tmp_path_factory.mktemp("reload"), upstream)
    issued = dep.issue("reader")
    original = dep.home.policy.read_text()
    with dep.broker() as broker, broker.client(issued.token) as client:
        assert client.get("echo", "/items/1").status_code == 200
        # Invalid: the old policy keeps serving and the log says why.
        dep.home.policy.write_text(original + "\n[grants.broken]\nupstream = 1\n")
        time.sleep(2.5)
        assert client.get("echo", "/items/1").status_code == 200
        log = (dep.home.logs / "broker.log").read_text()
        assert "policy reload refused" in log and "grants.broken" in log
        # Valid: /items/* is no longer allowed for the reader.
        dep.home.policy.write_text(
            original.replace(
                '[grants.reader]\nupstream = "echo"\nallow = [\n'
                '  { method = "GET", path = "/items/*" },',
                '[grants.reader]\nupstream = "echo"\nallow = [',
            )
        )
        deadline = time.time() + 10
        refused: BrokerRefused | None = None
        while refused is None and time.time() < deadline:
            try:
                client.get("echo", "/items/1")
                time.sleep(0.3)
            except BrokerRefused as exc:
                refused = exc
        assert refused is not None, "the valid policy was not picked up"
        assert refused.decision.reason.value == "not_allowed"
    with dep.admin() as admin:
        actions = [r.data.get("action") for r in admin.audit.records()]
    assert "policy_reload_failed" in actions
    assert actions.count("policy_load") >= 2


def test_serve_refuses_to_start_on_an_invalid_policy(
    tmp_path_factory: pytest.TempPathFactory, upstream: EchoServer
) -> None:
    from vertex_tools.errors import BrokerUnavailable

    dep = make_deployment(tmp_path_factory.mktemp("invalid"), upstream)
    dep.home.policy.write_text(dep.home.policy.read_text().replace("version = 1", "version = 7"))
    with pytest.raises(BrokerUnavailable) as info:
        dep.broker().start()
    assert "unknown policy version 7" in str(info.value)
