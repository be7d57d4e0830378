"""decide(): the effect AND the reason and rule, for every path through the checks."""

from __future__ import annotations

import json

import pytest

from vertex_tools.decision import Effect, Reason
from vertex_tools.home import policy_template
from vertex_tools.policy import parse_policy
from vertex_tools.policy.engine import RequestFacts, RiskClass, decide

POLICY = parse_policy(policy_template().encode()).policy
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def facts(
    method: str, path: str, body: bytes = b"", ctype: str = JSON, upstream: str = "echo"
) -> RequestFacts:
    return RequestFacts(upstream, method, path, "", ctype, body)


def j(obj: object) -> bytes:
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("grant", "request_facts", "effect", "reason", "rule"),
    [
        (
            "echo-writer",
            facts("GET", "/items/1"),
            Effect.ALLOW,
            Reason.ALLOWED,
            "grants.echo-writer.allow[0]",
        ),
        (
            "echo-writer",
            facts("POST", "/items", j({"amount": 100})),
            Effect.ALLOW,
            Reason.ALLOWED,
            "grants.echo-writer.allow[1]",
        ),
        (
            "echo-writer",
            facts("POST", "/items", b"amount=100&name=x", FORM),
            Effect.ALLOW,
            Reason.ALLOWED,
            "grants.echo-writer.allow[1]",
        ),
        ("nobody", facts("GET", "/items/1"), Effect.DENY, Reason.GRANT_UNKNOWN, "grants.nobody"),
        (
            "echo-writer",
            facts("GET", "/items/1", upstream="other"),
            Effect.DENY,
            Reason.UPSTREAM_MISMATCH,
            "grants.echo-writer.upstream",
        ),
        (
            "echo-writer",
            facts("GET", "/items"),
            Effect.DENY,
            Reason.NOT_ALLOWED,
            "grants.echo-writer.allow",
        ),
        (
            "echo-writer",
            facts("GET", "/items/1/2"),
            Effect.DENY,
            Reason.NOT_ALLOWED,
            "grants.echo-writer.allow",
        ),
        (
            "echo-writer",
            facts("DELETE", "/items/1"),
            Effect.DENY,
            Reason.NOT_ALLOWED,
            "grants.echo-writer.allow",
        ),
        ("echo-writer", facts("GET", "/items/../admin"), Effect.DENY, Reason.BAD_PATH, "paths"),
        ("echo-writer", facts("GET", "/items/%2e%2e"), Effect.DENY, Reason.BAD_PATH, "paths"),
        ("echo-writer", facts("GET", "/items/a%2fb"), Effect.DENY, Reason.BAD_PATH, "paths"),
        ("echo-writer", facts("GET", "/items//1"), Effect.DENY, Reason.BAD_PATH, "paths"),
        ("echo-writer", facts("GET", "/items/1\\x"), Effect.DENY, Reason.BAD_PATH, "paths"),
        ("echo-writer", facts("GET", "/items/%zz"), Effect.DENY, Reason.BAD_PATH, "paths"),
        ("echo-writer", facts("GET", "/items/..;"), Effect.DENY, Reason.BAD_PATH, "paths"),
        ("echo-writer", facts("GET", "/items/1;x=y"), Effect.DENY, Reason.BAD_PATH, "paths"),
        ("echo-writer", facts("GET", "/items/%3b"), Effect.DENY, Reason.BAD_PATH, "paths"),
        (
            "echo-writer",
            facts("POST", "/items", j({"name": "x"})),
            Effect.DENY,
            Reason.AMOUNT_MISSING,
            "grants.echo-writer.spend",
        ),
        (
            "echo-writer",
            facts("POST", "/items", j({"amount": 1.5})),
            Effect.DENY,
            Reason.AMOUNT_INVALID,
            "grants.echo-writer.spend",
        ),
        (
            "echo-writer",
            facts("POST", "/items", j({"amount": -1})),
            Effect.DENY,
            Reason.AMOUNT_INVALID,
            "grants.echo-writer.spend",
        ),
        (
            "echo-writer",
            facts("POST", "/items", j({"amount": True})),
            Effect.DENY,
            Reason.AMOUNT_INVALID,
            "grants.echo-writer.spend",
        ),
        (
            "echo-writer",
            facts("POST", "/items", b'{"amount": 1, "amount": 9999999}'),
            Effect.DENY,
            Reason.AMOUNT_INVALID,
            "grants.echo-writer.spend",
        ),
        (
            "echo-writer",
            facts("POST", "/items", b"amount=1&amount=999999", FORM),
            Effect.DENY,
            Reason.AMOUNT_INVALID,
            "grants.echo-writer.spend",
        ),
        (
            "echo-writer",
            facts("POST", "/items", b"not json"),
            Effect.DENY,
            Reason.AMOUNT_INVALID,
            "grants.echo-writer.spend",
        ),
        (
            "echo-writer",
            facts("POST", "/items", j({"amount": 1}), "text/plain"),
            Effect.DENY,
            Reason.AMOUNT_INVALID,
            "grants.echo-writer.spend",
        ),
        (
            "echo-writer",
            facts("POST", "/items", b"[" * 100 + b"]" * 100),
            Effect.DENY,
            Reason.AMOUNT_INVALID,
            "grants.echo-writer.spend",
        ),
        (
            "echo-writer",
            facts("POST", "/items", j({"amount": 100, "currency": "eur"})),
            Effect.DENY,
            Reason.CURRENCY_MISMATCH,
            "grants.echo-writer.spend.currency",
        ),
        (
            "echo-writer",
            facts("POST", "/items", j({"amount": 5001})),
            Effect.DENY,
            Reason.SPEND_PER_CALL_EXCEEDED,
            "grants.echo-writer.spend.per_call",
        ),
        (
            "echo-writer",
            facts("POST", "/items", b"amount=5001", FORM),
            Effect.DENY,
            Reason.SPEND_PER_CALL_EXCEEDED,
            "grants.echo-writer.spend.per_call",
        ),
    ],
)
def test_decisions(
    grant: str, request_facts: RequestFacts, effect: Effect, reason: Reason, rule: str
) -> None:
    verdict = decide(POLICY, grant, request_facts)
    assert verdict.decision.effect is effect
    assert verdict.decision.reason is reason
    assert verdict.decision.rule == rule
    assert verdict.decision.message


def test_allowed_request_resolves_operation_risk_and_amount() -> None:
    verdict = decide(POLICY, "echo-writer", facts("POST", "/items", j({"amount": 250})))
    resolved = verdict.resolved
    assert resolved is not None
    assert resolved.operation == "POST /items"
    assert resolved.risk is RiskClass.MONEY
    assert resolved.amount is not None and (resolved.amount.value, resolved.amount.currency) == (
        250,
        "usd",
    )
    read = decide(POLICY, "echo-writer", facts("GET", "/items/9")).resolved
    assert read is not None and read.risk is RiskClass.READ and read.amount is None


def test_refusal_messages_name_the_fix() -> None:
    verdict = decide(POLICY, "echo-writer", facts("DELETE", "/items/1"))
    assert "grants.echo-writer.allow" in verdict.decision.message
    over = decide(POLICY, "echo-writer", facts("POST", "/items", j({"amount": 9000})))
    assert "5000" in over.decision.message
