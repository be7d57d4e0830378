"""Stripe grants in policy files, and the engine's decisions on Stripe requests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest

from vertex_tools.decision import Reason
from vertex_tools.errors import PolicyError
from vertex_tools.policy import parse_policy
from vertex_tools.policy.engine import RequestFacts, decide
from vertex_tools.policy.models import Policy

HEAD = """\
version = 1

[upstreams.stripe]
provider = "stripe"
base_url = "https://api.stripe.com"
secret = "stripe-test"
"""

GOOD = (
    HEAD
    + """
[grants.support-agent]
upstream = "stripe"
operations = ["customers.list", "customers.retrieve", "customers.update", "refunds.create",
              "payment_intents.confirm"]
spend = { currency = "usd", per_call = 5000, per_day = 20000 }
"""
)

FORM = "application/x-www-form-urlencoded"


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text.encode())
    return [f"{key}: {message}" for key, _, message in info.value.problems]


def test_the_issues_example_grant_loads_with_the_catalogs_injection() -> None:
    loaded = parse_policy(GOOD.encode())
    upstream = loaded.policy.upstreams["stripe"]
    assert upstream.injections == [("Authorization", "Bearer {secret}")]


@pytest.mark.parametrize(
    ("grant", "expected"),
    [
        ('operations = ["refunds.delete"]', "'refunds.delete' is not a stripe operation"),
        ('operations = ["customers.list", "payouts.create"]', "'payouts.create' is not a stripe"),
        ('operations = ["refunds.create"]', "refunds.create moves money: the grant needs a spend"),
        (
            'operations = ["payment_intents.create"]',
            "payment_intents.create moves money: the grant needs a spend ceiling",
        ),
        (
            'operations = ["payment_intents.confirm"]',
            "payment_intents.confirm moves money: the grant needs a spend ceiling",
        ),
        (
            'operations = ["customers.list"]\nrepos = ["acme/website"]',
            "stripe grants have no repos",
        ),
        ('operations = ["customers.list"]\ntables = ["orders"]', "stripe grants have no tables"),
        ('allow = [ { method = "GET", path = "/v1/customers" } ]', "name operations, not allow"),
    ],
)
def test_policy_errors(grant: str, expected: str) -> None:
    text = HEAD + f'\n[grants.bad]\nupstream = "stripe"\n{grant}\n'
    found = problems(text)
    assert any(expected in p for p in found), found


def test_policy_check_cli_reports_a_money_operation_without_spend(tmp_path: Path) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text(HEAD + '\n[grants.bad]\nupstream = "stripe"\noperations = ["refunds.create"]\n')
    result = subprocess.run(
        [sys.executable, "-m", "vertex_tools", "policy", "check", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "refunds.create moves money: the grant needs a spend ceiling" in result.stderr


@pytest.fixture(scope="module")
def policy() -> Policy:
    return parse_policy(GOOD.encode()).policy


def facts(
    method: str, path: str, body: dict[str, str] | None = None, query: str = ""
) -> RequestFacts:
    return RequestFacts(
        upstream="stripe",
        method=method,
        path=path,
        query=query,
        content_type=FORM if body is not None else "",
        body=urlencode(body or {}).encode(),
    )


DENIED = [
    # (request, reason, rule)
    (facts("DELETE", "/v1/customers/cus_1"), Reason.UNKNOWN_OPERATION, "providers.stripe"),
    (facts("POST", "/v1/payment_intents/pi_1/capture", {}), Reason.UNKNOWN_OPERATION, None),
    (facts("GET", "/v1/charges/ch_1"), Reason.NOT_ALLOWED, "grants.support-agent.operations"),
    (facts("POST", "/v1/customers", {"name": "x"}), Reason.NOT_ALLOWED, None),
    # an id position holding something that is not an id: Stripe's search endpoint
    (facts("GET", "/v1/customers/search"), Reason.BAD_PATH, "providers.stripe.customers.retrieve"),
    # a second amount in the query string, where the broker does not read it
    (
        facts("POST", "/v1/refunds", {"charge": "ch_1", "amount": "100"}, query="amount=900000"),
        Reason.BAD_REQUEST,
        "providers.stripe.refunds.create",
    ),
    (
        facts("POST", "/v1/refunds", {"charge": "ch_1", "payment_intent": "pi_1"}),
        Reason.AMOUNT_INVALID,
        "providers.stripe.refunds.create",
    ),
    (facts("POST", "/v1/refunds", {"reason": "duplicate"}), Reason.AMOUNT_MISSING, None),
    (
        facts("POST", "/v1/refunds", {"charge": "ch_1", "amount": "5001"}),
        Reason.SPEND_PER_CALL_EXCEEDED,
        None,
    ),
    (
        facts("POST", "/v1/refunds", {"charge": "ch_1", "amount": "10", "currency": "eur"}),
        Reason.CURRENCY_MISMATCH,
        None,
    ),
    (
        facts("POST", "/v1/refunds", {"charge": "ch_1", "amount": "1.5"}),
        Reason.AMOUNT_INVALID,
        None,
    ),
    (facts("POST", "/v1/refunds", {"charge": "../x"}), Reason.AMOUNT_MISSING, None),
    (
        facts("POST", "/v1/customers/cus_1", {"balance": "-100000"}),
        Reason.NOT_ALLOWED,
        "providers.stripe.customers.update",
    ),
]


@pytest.mark.parametrize(("request_facts", "reason", "rule"), DENIED)
def test_denied(
    policy: Policy, request_facts: RequestFacts, reason: Reason, rule: str | None
) -> None:
    verdict = decide(policy, "support-agent", request_facts)
    assert verdict.decision.reason is reason, verdict.decision
    assert not verdict.decision.allowed
    if rule is not None:
        assert verdict.decision.rule == rule


def test_refund_with_amount_is_counted_as_stated(policy: Policy) -> None:
    verdict = decide(
        policy, "support-agent", facts("POST", "/v1/refunds", {"charge": "ch_1", "amount": "4999"})
    )
    # The charge is still read: it decides the currency and what is left to refund.
    assert verdict.decision.allowed
    assert verdict.resolved is not None and verdict.resolved.amount is None
    assert verdict.resolved.lookup is not None
    assert (verdict.resolved.lookup.path, verdict.resolved.lookup.stated) == (
        "/v1/charges/ch_1",
        4999,
    )


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"charge": "ch_1"}, "/v1/charges/ch_1"),
        ({"charge": "ch_1", "reason": "requested_by_customer"}, "/v1/charges/ch_1"),
        ({"payment_intent": "pi_1"}, "/v1/payment_intents/pi_1"),
    ],
)
def test_full_refund_asks_the_broker_to_read_the_charge(
    policy: Policy, body: dict[str, str], path: str
) -> None:
    verdict = decide(policy, "support-agent", facts("POST", "/v1/refunds", body))
    assert verdict.decision.allowed
    resolved = verdict.resolved
    assert resolved is not None and resolved.amount is None and resolved.lookup is not None
    assert resolved.lookup.path == path
    assert resolved.lookup.minus_field == "amount_refunded"


@pytest.mark.parametrize(
    "request_facts",
    [
        facts("GET", "/v1/customers", query="email=ada%40example.com&limit=3"),
        facts("GET", "/v1/customers/cus_Ab9"),
        facts("POST", "/v1/customers/cus_Ab9", {"name": "Ada", "metadata[tier]": "gold"}),
    ],
)
def test_allowed(policy: Policy, request_facts: RequestFacts) -> None:
    verdict = decide(policy, "support-agent", request_facts)
    assert verdict.decision.allowed, verdict.decision
    assert verdict.resolved is not None and verdict.resolved.amount is None


def test_a_confirm_is_resolved_to_a_lookup_of_the_intent_in_its_path(policy: Policy) -> None:
    """The body is never read for a confirm's amount: an agent cannot state a smaller one."""
    for body in ({}, {"amount": "1"}):
        request = facts("POST", "/v1/payment_intents/pi_1/confirm", body)
        verdict = decide(policy, "support-agent", request)
        assert verdict.decision.allowed
        assert verdict.resolved is not None and verdict.resolved.amount is None
        assert verdict.resolved.lookup is not None
        assert verdict.resolved.lookup.path == "/v1/payment_intents/pi_1"
