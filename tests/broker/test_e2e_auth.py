"""Authentication against a real broker process: every bad token is a 401, audited,
and nothing reaches the upstream."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import Deployment
from vertex_tools import BrokerClient, BrokerRefused
from vertex_tools.audit import AuditLog, EntryKind
from vertex_tools.client import VertexAuth
from vertex_tools.local import LocalBroker
from vertex_tools.store import SqliteStore
from vertex_tools.tokens import mint_token


def raw(broker: LocalBroker) -> httpx.Client:
    assert broker.url is not None and broker.url.startswith("http://")
    return httpx.Client(base_url=broker.url, trust_env=False)


def upstream_count(deployment: Deployment) -> int:
    return len(deployment.upstream.received)


def last_intent_of(deployment: Deployment, token_id: str) -> dict[str, object]:
    with AuditLog(deployment.home.audit_db) as log:
        intents = [
            dict(r.data)
            for r in log.records()
            if r.kind is EntryKind.INTENT and r.data.get("token_id") == token_id
        ]
    assert intents, f"no intent entry for {token_id}"
    return intents[-1]


def refused(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert response.headers["vertex-decision"] == "deny"
    return response.status_code, body["error"]["reason"], body["request_id"]


def test_signed_request_is_allowed_and_audited(deployment: Deployment, broker: LocalBroker) -> None:
    issued = deployment.issue("reader")
    with broker.client(issued.token) as client:
        response = client.get("echo", "/items/1")
    assert response.status_code == 200 and response.json()["authorized"] is True
    request_id = response.headers["vertex-request-id"]
    intent = deployment.intent(request_id)
    assert intent["effect"] == "allow" and intent["token_id"] == issued.record.token_id
    assert intent["auth"] == "signed" and intent["grant"] == "reader"
    assert intent["operation"] == "GET /items/*"
    outcome = deployment.outcome(request_id)
    assert outcome["status"] == 200 and outcome["latency_us"] > 0


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "token_missing"),
        ("", "token_missing"),
        ("Bearer", "token_malformed"),
        ("Bearer not-a-token", "token_malformed"),
        ("Basic dXNlcjpwYXNz", "token_malformed"),
        ("Vertex-v1 id=tk_x, ts=1, nonce=abc, sig=def", "token_malformed"),
        ("Bearer vt1.tk_aaaaaaaaaaaaaaaa." + "A" * 43, "token_unknown"),
    ],
)
def test_bad_credentials_are_401_audited_and_not_forwarded(
    deployment: Deployment, broker: LocalBroker, authorization: str | None, reason: str
) -> None:
    before = upstream_count(deployment)
    headers = {} if authorization is None else {"Authorization": authorization}
    with raw(broker) as http:
        response = http.get("/proxy/echo/items/1", headers=headers)
    status, got, request_id = refused(response)
    assert (status, got) == (401, reason)
    assert upstream_count(deployment) == before
    intent = deployment.intent(request_id)
    assert intent["reason"] == reason and intent["effect"] == "deny"
    assert deployment.outcome(request_id)["status"] == 401


def test_revoked_token_is_refused_on_the_very_next_request(
    deployment: Deployment, broker: LocalBroker
) -> None:
    issued = deployment.issue("reader")
    with broker.client(issued.token) as client:
        assert client.get("echo", "/items/1").status_code == 200
        deployment.revoke(issued.record.token_id)
        before = upstream_count(deployment)
        with pytest.raises(BrokerRefused) as info:
            client.get("echo", "/items/1")
    assert info.value.status == 401
    assert info.value.decision.reason.value == "token_revoked"
    assert upstream_count(deployment) == before
    intent = last_intent_of(deployment, issued.record.token_id)
    assert (intent["reason"], intent["effect"]) == ("token_revoked", "deny")


def test_expired_token_is_refused(deployment: Deployment, broker: LocalBroker) -> None:
    old = mint_token("reader", now=time.time() - 7200, ttl=3600)
    store = SqliteStore(deployment.home.state_db)
    store.add_token(old.record)
    store.close()
    before = upstream_count(deployment)
    with broker.client(old.token) as client, pytest.raises(BrokerRefused) as info:
        client.get("echo", "/items/1")
    assert info.value.status == 401
    assert info.value.decision.reason.value == "token_expired"
    assert upstream_count(deployment) == before
    intent = last_intent_of(deployment, old.record.token_id)
    assert (intent["reason"], intent["effect"]) == ("token_expired", "deny")


def test_a_captured_signed_request_cannot_be_replayed(
    deployment: Deployment, broker: LocalBroker
) -> None:
    issued = deployment.issue("reader")
    auth = VertexAuth(issued.token)
    with raw(broker) as http:
        request = http.build_request("GET", "/proxy/echo/items/1")
        signed = next(auth.sync_auth_flow(request))
        first = http.send(signed)
        before = upstream_count(deployment)
        second = http.send(signed)
    assert first.status_code == 200
    assert refused(second)[:2] == (401, "replayed_request")
    assert upstream_count(deployment) == before


def test_a_tampered_signed_request_is_refused(deployment: Deployment, broker: LocalBroker) -> None:
    issued = deployment.issue("echo-writer")
    auth = VertexAuth(issued.token)
    with raw(broker) as http:
        request = http.build_request("POST", "/proxy/echo/items", json={"amount": 10})
        signed = next(auth.sync_auth_flow(request))
        tampered = http.build_request(
            "POST",
            "/proxy/echo/items",
            json={"amount": 4999},
            headers={"Authorization": signed.headers["Authorization"]},
        )
        response = http.send(tampered)
    assert refused(response)[:2] == (401, "bad_signature")


def test_a_stale_timestamp_is_refused(deployment: Deployment, broker: LocalBroker) -> None:
    issued = deployment.issue("reader")
    assert broker.url is not None
    client = BrokerClient(broker.url, token=issued.token, clock=lambda: time.time() - 3600)
    with client, pytest.raises(BrokerRefused) as info:
        client.get("echo", "/items/1")
    assert info.value.decision.reason.value == "stale_timestamp"


def test_bearer_only_where_the_grant_allows_it(deployment: Deployment, broker: LocalBroker) -> None:
    writer = deployment.issue("echo-writer")  # bearer = true
    reader = deployment.issue("reader")  # bearer = false
    with raw(broker) as http:
        ok = http.get("/proxy/echo/items/1", headers={"Authorization": f"Bearer {writer.token}"})
        github_style = http.get(
            "/proxy/echo/items/1", headers={"Authorization": f"token {writer.token}"}
        )
        no = http.get("/proxy/echo/items/1", headers={"Authorization": f"Bearer {reader.token}"})
    assert ok.status_code == 200 and ok.json()["authorized"] is True
    assert github_style.status_code == 200
    assert refused(no)[:2] == (401, "bearer_not_allowed")
    assert deployment.intent(ok.headers["vertex-request-id"])["auth"] == "bearer"


def test_a_token_of_one_grant_cannot_call_another_upstream(
    deployment: Deployment, broker: LocalBroker
) -> None:
    issued = deployment.issue("reader")
    with broker.client(issued.token) as client, pytest.raises(BrokerRefused) as info:
        client.get("elsewhere", "/items/1")
    assert info.value.status == 403
    assert info.value.decision.reason.value == "upstream_mismatch"


def test_no_token_value_is_in_any_file_or_log(deployment: Deployment, broker: LocalBroker) -> None:
    issued = deployment.issue("echo-writer")
    with broker.client(issued.token) as client:
        client.get("echo", "/items/1")
    with raw(broker) as http:
        http.get("/proxy/echo/items/1", headers={"Authorization": f"Bearer {issued.token}"})
    secrets = [t.split(".")[2].encode() for t in deployment.tokens]
    for path in deployment.home.root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in secrets:
                assert secret not in data, f"a token secret is in {path}"
