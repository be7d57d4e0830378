"""Supabase grants: what the loader reports, and what the engine decides for them."""

from __future__ import annotations

import pytest

from vertex_tools.decision import Effect, Reason
from vertex_tools.errors import PolicyError
from vertex_tools.policy import parse_policy
from vertex_tools.policy.engine import RequestFacts, RiskClass, decide
from vertex_tools.policy.loader import LoadedPolicy

UPSTREAM = """
version = 1

[settings]
allow_private_upstreams = ["127.0.0.1"]

[upstreams.supabase]
provider = "supabase"
base_url = "http://127.0.0.1:54321"
secret = "supabase-key"
"""

GRANT = """
[grants.reporting]
upstream = "supabase"
operations = ["rows.select", "rows.insert"]
tables = ["orders"]
"""


def problems(grant: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(PolicyError) as info:
        parse_policy((UPSTREAM + grant).encode(), "policy.toml")
    return info.value.problems


def test_the_issue_example_loads() -> None:
    loaded = parse_policy((UPSTREAM + GRANT).encode())
    grant = loaded.policy.grants["reporting"]
    assert grant.tables == ["orders"]
    assert loaded.policy.upstreams["supabase"].injections == [
        ("apikey", "{secret}"),
        ("Authorization", "Bearer {secret}"),
    ]


def test_no_supabase_operation_needs_a_spend_ceiling() -> None:
    # Nothing in this catalog moves money, so no grant of it needs `spend`.
    grant = GRANT.replace(
        '["rows.select", "rows.insert"]',
        '["rows.select", "rows.insert", "rows.update", "rows.delete", "rpc.call"]',
    ).replace('["orders"]', '["orders", "rpc:order_total"]')
    loaded = parse_policy((UPSTREAM + grant).encode())
    assert loaded.policy.grants["reporting"].spend is None


@pytest.mark.parametrize(
    ("edit", "key", "needle"),
    [
        (("rows.insert", "rows.upsert"), "grants.reporting.operations", "'rows.upsert' is not"),
        (("rows.insert", "refunds.create"), "grants.reporting.operations", "not a supabase"),
        (('["orders"]', '["Orders"]'), "grants.reporting.tables", "not a valid supabase"),
        (('["orders"]', '["public.orders"]'), "grants.reporting.tables", "not a valid"),
        (('["orders"]', '["orders", "rpc:"]'), "grants.reporting.tables", "not a valid"),
        (('["orders"]', '["orders", "*"]'), "grants.reporting.tables", "not a valid"),
        (('tables = ["orders"]', 'repos = ["acme/web"]'), "grants.reporting.repos", "no repos"),
        (('tables = ["orders"]', ""), "grants.reporting.tables", "required"),
    ],
)
def test_grant_mistakes_are_reported(edit: tuple[str, str], key: str, needle: str) -> None:
    found = problems(GRANT.replace(*edit))
    assert any(k == key and needle in message for k, _line, message in found), found


# -- decisions

POLICY = (
    UPSTREAM
    + GRANT
    + """
[grants.editor]
upstream = "supabase"
operations = ["rows.select", "rows.update", "rows.delete", "rpc.call"]
tables = ["orders", "rpc:order_total"]
"""
)


@pytest.fixture(scope="module")
def loaded() -> LoadedPolicy:
    return parse_policy(POLICY.encode())


@pytest.mark.parametrize(
    ("grant", "method", "path", "query", "reason"),
    [
        ("reporting", "GET", "/rest/v1/orders", "limit=5", Reason.ALLOWED),
        ("reporting", "POST", "/rest/v1/orders", "", Reason.ALLOWED),
        ("reporting", "PUT", "/rest/v1/orders", "id=eq.1", Reason.UNKNOWN_OPERATION),
        ("reporting", "GET", "/rest/v1/rpc/order_total", "", Reason.UNKNOWN_OPERATION),
        ("reporting", "DELETE", "/rest/v1/orders", "id=eq.1", Reason.NOT_ALLOWED),
        ("reporting", "POST", "/rest/v1/rpc/order_total", "", Reason.NOT_ALLOWED),
        ("reporting", "GET", "/rest/v1/customers", "", Reason.RESOURCE_NOT_ALLOWED),
        ("editor", "POST", "/rest/v1/rpc/order_total", "", Reason.ALLOWED),
        ("editor", "POST", "/rest/v1/rpc/purge_orders", "", Reason.RESOURCE_NOT_ALLOWED),
        # the table grant does not grant a function of the same name, nor the reverse
        ("editor", "POST", "/rest/v1/rpc/orders", "", Reason.RESOURCE_NOT_ALLOWED),
        ("editor", "GET", "/rest/v1/order_total", "", Reason.RESOURCE_NOT_ALLOWED),
        ("editor", "PATCH", "/rest/v1/orders", "", Reason.MISSING_FILTER),
        ("editor", "DELETE", "/rest/v1/orders", "select=id", Reason.MISSING_FILTER),
        ("editor", "DELETE", "/rest/v1/orders", "id=eq.3", Reason.ALLOWED),
        ("editor", "GET", "/rest/v1/orders", "select=*,customers(*)", Reason.BAD_REQUEST),
        ("editor", "GET", "/rest/v1/orders", "limit=1&limit=99999", Reason.BAD_REQUEST),
    ],
)
def test_decisions(
    loaded: LoadedPolicy, grant: str, method: str, path: str, query: str, reason: Reason
) -> None:
    facts = RequestFacts("supabase", method, path, query, "application/json", b"{}")
    verdict = decide(loaded.policy, grant, facts)
    assert verdict.decision.reason is reason, verdict.decision
    assert (verdict.decision.effect is Effect.ALLOW) is (reason is Reason.ALLOWED)


def test_an_allowed_select_is_capped_and_resolved(loaded: LoadedPolicy) -> None:
    facts = RequestFacts("supabase", "GET", "/rest/v1/orders", "limit=50000", "", b"")
    verdict = decide(loaded.policy, "reporting", facts)
    assert verdict.resolved is not None
    assert verdict.resolved.operation == "rows.select"
    assert verdict.resolved.resource == "orders"
    assert verdict.resolved.risk is RiskClass.READ
    assert verdict.resolved.query == "limit=1000"


def test_an_rpc_resolves_to_its_function(loaded: LoadedPolicy) -> None:
    facts = RequestFacts("supabase", "POST", "/rest/v1/rpc/order_total", "", "", b"{}")
    verdict = decide(loaded.policy, "editor", facts)
    assert verdict.resolved is not None
    assert (verdict.resolved.resource, verdict.resolved.query) == ("rpc:order_total", "limit=1000")
    assert verdict.resolved.risk is RiskClass.WRITE


@pytest.mark.parametrize(
    ("method", "headers", "reason"),
    [
        ("POST", (("prefer", "return=representation"),), None),
        ("POST", (("prefer", "resolution=merge-duplicates"),), Reason.NOT_ALLOWED),
        (
            "POST",
            (("prefer", "return=minimal, resolution = ignore-duplicates"),),
            Reason.NOT_ALLOWED,
        ),
        ("GET", (("accept-profile", "private"),), Reason.NOT_ALLOWED),
        ("POST", (("content-profile", "private"),), Reason.NOT_ALLOWED),
    ],
)
def test_headers_that_change_what_a_request_does_are_refused(
    method: str, headers: tuple[tuple[str, str], ...], reason: Reason | None
) -> None:
    """An insert-only grant must not overwrite rows through an upsert, and no grant
    reaches another schema through a profile header."""
    policy = parse_policy((UPSTREAM + GRANT).encode()).policy
    facts = RequestFacts(
        "supabase", method, "/rest/v1/orders", "", "application/json", b'[{"id": 1}]', headers
    )
    decision = decide(policy, "reporting", facts).decision
    if reason is None:
        assert decision.effect is Effect.ALLOW
    else:
        assert (decision.effect, decision.reason) == (Effect.DENY, reason)
