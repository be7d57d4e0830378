"""What crosses the broker: the secret goes in server-side, credentials the agent sent
never go out, the secret never comes back, redirects are not followed."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from tests.conftest import SECRET, Deployment
from vertex_tools import BrokerRefused, BrokerUnavailable
from vertex_tools.local import LocalBroker


def test_the_secret_is_injected_and_agent_credentials_are_dropped(
    deployment: Deployment, broker: LocalBroker
) -> None:
    issued = deployment.issue("echo-writer")
    sneaky = {
        "Cookie": "session=agent",
        "X-Api-Key": "agent-key",
        "apikey": "agent-key",
        "Proxy-Authorization": "Basic eDp5",
        "Idempotency-Key": "agent-chosen",
        "X-Forwarded-For": "10.0.0.1",
        "X-Custom": "dropped too: allowlist, not denylist",
        "Accept": "application/json",
    }
    with broker.client(issued.token) as client:
        response = client.post("echo", "/items", json={"amount": 100, "name": "x"}, headers=sneaky)
    assert response.status_code == 201
    seen = deployment.upstream.received[-1]
    assert seen.header("Authorization") == f"Bearer {SECRET}"
    for name in (
        "Cookie",
        "X-Api-Key",
        "apikey",
        "Proxy-Authorization",
        "Idempotency-Key",
        "X-Forwarded-For",
        "X-Custom",
    ):
        assert seen.header(name) is None, name
    assert seen.header("Accept") == "application/json"
    assert all(not k.lower().startswith("x-vertex") for k, _ in seen.headers)
    assert json.loads(seen.body) == {"amount": 100, "name": "x"}


def test_the_secret_never_comes_back_even_masked(
    deployment: Deployment, broker: LocalBroker
) -> None:
    issued = deployment.issue("reader")
    with broker.client(issued.token) as client:
        response = client.get("echo", "/leak")
    assert response.status_code == 401  # the upstream's own answer, passed through
    everything = response.text + json.dumps(dict(response.headers))
    assert SECRET not in everything
    assert SECRET[-4:] not in everything  # sk_test_****...Wxyz: the masked form too
    assert base64.b64encode(SECRET.encode()).decode() not in everything
    assert "[REDACTED]" in response.text


def test_redirects_are_returned_not_followed(deployment: Deployment, broker: LocalBroker) -> None:
    issued = deployment.issue("reader")
    before = len(deployment.upstream.received)
    with broker.client(issued.token) as client:
        response = client.get("echo", "/redirect")
    assert response.status_code == 302
    assert response.headers["location"] == "http://127.0.0.2:1/stolen"
    assert len(deployment.upstream.received) == before + 1


@pytest.mark.parametrize("code", [400, 404, 500, 503])
def test_upstream_errors_pass_through_and_are_recorded(
    deployment: Deployment, broker: LocalBroker, code: int
) -> None:
    issued = deployment.issue("reader")
    with broker.client(issued.token) as client:
        response = client.get("echo", f"/status/{code}")
    assert response.status_code == code
    assert response.headers["vertex-decision"] == "allow"
    outcome = deployment.outcome(response.headers["vertex-request-id"])
    assert outcome["status"] == code


def test_upstream_timeout_is_a_clear_504(deployment: Deployment, broker: LocalBroker) -> None:
    issued = deployment.issue("reader")
    with broker.client(issued.token) as client, pytest.raises(BrokerUnavailable) as info:
        client.get("echo", "/slow", params={"seconds": "5"})
    assert "upstream_timeout" in str(info.value)


def test_oversize_response_is_refused(deployment: Deployment, broker: LocalBroker) -> None:
    issued = deployment.issue("reader")
    with broker.client(issued.token) as client, pytest.raises(BrokerUnavailable) as info:
        client.get("echo", "/big", params={"bytes": str(2 * 1048576)})
    assert "max_response_bytes" in str(info.value)


def test_oversize_request_is_refused(deployment: Deployment, broker: LocalBroker) -> None:
    issued = deployment.issue("echo-writer")
    before = len(deployment.upstream.received)
    with broker.client(issued.token) as client, pytest.raises(BrokerRefused) as info:
        client.post("echo", "/items", content=b"x" * 70000, headers={"content-type": "text/plain"})
    assert info.value.status == 413
    assert len(deployment.upstream.received) == before


def test_proxy_settings_in_the_environment_are_ignored(
    deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = dict(deployment.env)
    env.update(
        HTTP_PROXY="http://127.0.0.1:9",
        http_proxy="http://127.0.0.1:9",
        ALL_PROXY="http://127.0.0.1:9",
        NO_PROXY="",
    )
    broker = LocalBroker(deployment.home.root, env=env, listen="tcp")
    issued = deployment.issue("reader")
    with broker, broker.client(issued.token) as client:
        assert client.get("echo", "/items/1").status_code == 200


def test_unknown_routes_are_404_and_health_answers(broker: LocalBroker) -> None:
    assert broker.url is not None
    with httpx.Client(base_url=broker.url, trust_env=False) as http:
        assert http.get("/healthz").json()["status"] == "ok"
        assert http.get("/admin").status_code == 404
        bad = http.get("/proxy/ECHO/items/1")
    assert bad.status_code == 403
    assert bad.json()["error"]["reason"] == "bad_request"


def test_the_secret_is_in_no_file_log_or_audit_entry(
    deployment: Deployment, broker: LocalBroker
) -> None:
    issued = deployment.issue("reader")
    with broker.client(issued.token) as client:
        client.get("echo", "/leak")
        client.get("echo", "/items/1")
        with pytest.raises(BrokerRefused):
            client.post("echo", "/items", json={"amount": 1})
    needles = [SECRET.encode(), SECRET.encode("utf-16-le"), base64.b64encode(SECRET.encode())]
    files = [p for p in deployment.home.root.rglob("*") if p.is_file()]
    assert any(p.name == "broker.log" for p in files)
    assert any(p.name == "audit.db" for p in files)
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"the secret is in {path}"
