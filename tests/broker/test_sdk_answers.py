"""What official SDKs get back: refusals in each provider's error shape (still readable
by ``Decision.from_json``), and the provider's own URLs pointing at the broker."""

from __future__ import annotations

import json

import pytest

from vertex_tools.broker.answers import Outgoing, refusal
from vertex_tools.broker.sdk_answers import for_sdk, sdk_message
from vertex_tools.decision import Decision, Effect, Reason
from vertex_tools.policy import parse_policy
from vertex_tools.policy.models import Policy

POLICY = b"""version = 1
[settings]
allow_private_upstreams = ["127.0.0.1"]
[upstreams.stripe]
provider = "stripe"
base_url = "https://api.stripe.com"
secret = "s"
[upstreams.github]
provider = "github"
base_url = "https://ghe.example.com/api/v3"
secret = "g"
[upstreams.supabase]
provider = "supabase"
base_url = "https://xyz.supabase.co"
secret = "p"
[upstreams.echo]
provider = "http"
base_url = "http://127.0.0.1:9000"
secret = "e"
[grants.g]
upstream = "echo"
allow = [ { method = "GET", path = "/x" } ]
"""
DENIED = Decision.deny(
    Reason.RESOURCE_NOT_ALLOWED, "grants.bot.repos", "issues.get on 'other/x' is outside the grant"
)
PLAIN = [(b"host", b"127.0.0.1:8750"), (b"authorization", b"token vt1.tk_x.y")]
SIGNED = [(b"host", b"127.0.0.1:8750"), (b"authorization", b"Vertex-v1 token=tk_x,...")]


@pytest.fixture(scope="module")
def policy() -> Policy:
    return parse_policy(POLICY).policy


def _adapt(
    policy: Policy, answer: Outgoing, upstream: str, headers: list[tuple[bytes, bytes]]
) -> Outgoing:
    return for_sdk(
        answer, policy=policy, raw_path=f"/proxy/{upstream}/x", headers=headers, scheme="http"
    )


@pytest.mark.parametrize("upstream", ["stripe", "github", "supabase", "echo"])
def test_signed_requests_get_the_brokers_answer_unchanged(policy: Policy, upstream: str) -> None:
    answer = refusal(DENIED, "req1")
    assert _adapt(policy, answer, upstream, SIGNED) is answer


def test_a_generic_http_upstream_is_never_reshaped(policy: Policy) -> None:
    answer = refusal(DENIED, "req1")
    assert _adapt(policy, answer, "echo", PLAIN) is answer


@pytest.mark.parametrize("upstream", ["stripe", "github", "supabase"])
def test_every_shape_keeps_the_decision_readable(policy: Policy, upstream: str) -> None:
    shaped = _adapt(policy, refusal(DENIED, "req1"), upstream, PLAIN)
    body = json.loads(shaped.body)
    decision = Decision.from_json(body["error"])
    assert (decision.reason, decision.rule) == (DENIED.reason, DENIED.rule)
    assert (body["request_id"], shaped.status) == ("req1", 403)


def test_stripe_reads_error_message_type_and_code(policy: Policy) -> None:
    shaped = _adapt(policy, refusal(DENIED, "req1"), "stripe", PLAIN)
    error = json.loads(shaped.body)["error"]
    assert error["message"] == sdk_message(DENIED)
    assert error["message"].startswith("vertex_tools: resource_not_allowed (rule grants.bot.repos)")
    assert (error["type"], error["code"]) == ("invalid_request_error", "resource_not_allowed")
    assert ("request-id", "req1") in shaped.headers


def test_github_reads_a_top_level_message(policy: Policy) -> None:
    body = json.loads(_adapt(policy, refusal(DENIED, "req1"), "github", PLAIN).body)
    assert (body["message"], body["status"]) == (sdk_message(DENIED), "403")
    assert body["error"]["message"] == DENIED.message  # the broker's own object untouched


def test_postgrest_reads_message_code_details_hint(policy: Policy) -> None:
    body = json.loads(_adapt(policy, refusal(DENIED, "req1"), "supabase", PLAIN).body)
    assert body["message"] == sdk_message(DENIED)
    assert (body["code"], body["details"]) == ("resource_not_allowed", "rule grants.bot.repos")
    assert "req1" in body["hint"]


def _github_answer() -> Outgoing:
    body = {
        "url": "https://api.github.com/repos/acme/web/issues/1",
        "comments_url": "https://ghe.example.com/api/v3/repos/acme/web/issues/1/comments",
        "html_url": "https://github.com/acme/web/issues/1",
    }
    link = '<https://api.github.com/repositories/1/issues?page=2>; rel="next"'
    headers = [("content-type", "application/json; charset=utf-8"), ("link", link)]
    return Outgoing(200, headers, json.dumps(body).encode())


def test_github_urls_point_back_at_the_broker(policy: Policy) -> None:
    rebased = _adapt(policy, _github_answer(), "github", PLAIN)
    body = json.loads(rebased.body)
    base = "http://127.0.0.1:8750/proxy/github"
    assert body["url"] == f"{base}/repos/acme/web/issues/1"
    assert body["comments_url"] == f"{base}/repos/acme/web/issues/1/comments"
    assert body["html_url"] == "https://github.com/acme/web/issues/1"  # a page, not the API
    assert dict(rebased.headers)["link"] == f'<{base}/repositories/1/issues?page=2>; rel="next"'


@pytest.mark.parametrize("host", [b'evil"}, "x": "', b"a b", b"host/path", b"", b"h\\x"], ids=repr)
def test_a_host_that_is_not_a_plain_name_leaves_urls_alone(policy: Policy, host: bytes) -> None:
    answer = _github_answer()
    headers = [(b"host", host), (b"authorization", b"token vt1.tk_x.y")]
    assert _adapt(policy, answer, "github", headers).body == answer.body


def test_signed_clients_see_githubs_own_urls(policy: Policy) -> None:
    answer = _github_answer()
    assert _adapt(policy, answer, "github", SIGNED) is answer


def test_a_held_request_is_an_error_too_never_a_success(policy: Policy) -> None:
    held = Decision(
        Effect.APPROVE, Reason.APPROVAL_PENDING, "grants.bot.taint", "waiting for a human"
    )
    shaped = _adapt(policy, refusal(held, "req2"), "stripe", PLAIN)
    error = json.loads(shaped.body)["error"]
    assert shaped.status == 403  # the Stripe SDK raises stripe.PermissionError
    assert error["message"].startswith("vertex_tools: approval_pending")
    assert Decision.from_json(error).effect is Effect.APPROVE


def test_a_file_served_raw_is_never_rewritten(policy: Policy) -> None:
    raw = b"see https://api.github.com/repos/acme/web\n"
    answer = Outgoing(200, [("content-type", "application/vnd.github.raw")], raw)
    assert _adapt(policy, answer, "github", PLAIN).body == raw
