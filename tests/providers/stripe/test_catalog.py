"""The Stripe catalog as data: which request is which operation, and how money is read."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.providers.stripe.conftest import ALL_OPERATIONS
from vertex_tools.client import BrokerClient
from vertex_tools.policy.facts import RiskClass
from vertex_tools.policy.paths import check_path
from vertex_tools.providers import get_catalog
from vertex_tools.providers.stripe.catalog import CATALOG, REFUND_LOOKUP
from vertex_tools.providers.stripe.toolkit import StripeTool, StripeToolkit
from vertex_tools.tokens import mint_token

MATCHES = [
    ("GET", "/v1/customers", "customers.list", {}),
    ("GET", "/v1/customers/cus_123", "customers.retrieve", {"customer": "cus_123"}),
    ("POST", "/v1/customers", "customers.create", {}),
    ("POST", "/v1/customers/cus_123", "customers.update", {"customer": "cus_123"}),
    ("GET", "/v1/payment_intents", "payment_intents.list", {}),
    ("GET", "/v1/payment_intents/pi_9", "payment_intents.retrieve", {"intent": "pi_9"}),
    ("POST", "/v1/payment_intents", "payment_intents.create", {}),
    ("POST", "/v1/payment_intents/pi_9/confirm", "payment_intents.confirm", {"intent": "pi_9"}),
    ("GET", "/v1/charges", "charges.list", {}),
    ("GET", "/v1/charges/ch_7", "charges.retrieve", {"charge": "ch_7"}),
    ("POST", "/v1/refunds", "refunds.create", {}),
    ("GET", "/v1/refunds", "refunds.list", {}),
    ("GET", "/v1/refunds/re_5", "refunds.retrieve", {"refund": "re_5"}),
    ("GET", "/v1/balance", "balance.retrieve", {}),
]

UNKNOWN = [
    ("DELETE", "/v1/customers/cus_123"),  # customers.delete: destructive, not catalogued
    ("POST", "/v1/payment_intents/pi_9"),  # payment_intents.update could change the amount
    ("POST", "/v1/payment_intents/pi_9/capture"),  # moves money: not catalogued, so refused
    ("POST", "/v1/payment_intents/pi_9/cancel"),
    ("POST", "/v1/charges"),  # legacy direct charge
    ("POST", "/v1/charges/ch_7/capture"),
    ("POST", "/v1/payouts"),
    ("POST", "/v1/transfers"),
    ("GET", "/v1/balance/history"),
    ("GET", "/v1/customers/cus_123/sources"),
    ("GET", "/v2/customers"),
    ("PUT", "/v1/customers"),
    ("GET", "/"),
]


@pytest.mark.parametrize(("method", "path", "name", "params"), MATCHES)
def test_request_resolves_to_operation(
    method: str, path: str, name: str, params: dict[str, str]
) -> None:
    found = CATALOG.match(method, check_path(path))
    assert found is not None
    op, got = found
    assert (op.name, got) == (name, params)
    assert op.resource_of(got) is None  # Stripe grants have no resources


@pytest.mark.parametrize(("method", "path"), UNKNOWN)
def test_unknown_request_matches_nothing(method: str, path: str) -> None:
    assert CATALOG.match(method, check_path(path)) is None


def test_catalog_is_registered_and_complete() -> None:
    assert get_catalog("stripe") is CATALOG
    assert CATALOG.names == sorted(ALL_OPERATIONS)
    assert CATALOG.inject == (("Authorization", "Bearer {secret}"),)
    assert CATALOG.resource_key is None
    for op in CATALOG.operations:
        assert op.summary, op.name
        assert op.resource is None


@pytest.mark.parametrize(
    ("name", "risk"),
    [
        ("customers.list", RiskClass.READ),
        ("customers.create", RiskClass.WRITE),
        ("customers.update", RiskClass.WRITE),
        ("payment_intents.create", RiskClass.MONEY),
        ("payment_intents.confirm", RiskClass.MONEY),
        ("refunds.create", RiskClass.MONEY),
        ("balance.retrieve", RiskClass.READ),
    ],
)
def test_risk_classes(name: str, risk: RiskClass) -> None:
    op = CATALOG.get(name)
    assert op is not None
    assert op.risk is risk


def test_every_money_operation_reads_an_amount_and_only_those() -> None:
    for op in CATALOG.operations:
        assert (op.amount is not None) == (op.risk is RiskClass.MONEY), op.name


def test_refund_without_amount_counts_what_is_left_of_the_charge() -> None:
    op = CATALOG.get("refunds.create")
    assert op is not None and op.amount is not None
    assert op.amount.lookup is REFUND_LOOKUP
    assert REFUND_LOOKUP.sources == (
        ("charge", "/v1/charges/{id}"),
        ("payment_intent", "/v1/payment_intents/{id}"),
    )
    assert (REFUND_LOOKUP.amount_field, REFUND_LOOKUP.minus_field) == ("amount", "amount_refunded")


@pytest.mark.parametrize(
    ("name", "control", "content"),
    [
        ("refunds.create", {"charge", "payment_intent", "amount", "currency"}, {"metadata"}),
        ("payment_intents.create", {"amount", "currency", "customer", "payment_method"}, set()),
        ("customers.create", {"email"}, {"name", "description", "metadata"}),
        ("customers.update", {"customer", "email"}, {"name", "description", "metadata"}),
        ("charges.list", {"customer", "payment_intent", "limit"}, set()),
    ],
)
def test_control_and_content_arguments(name: str, control: set[str], content: set[str]) -> None:
    op = CATALOG.get(name)
    assert op is not None
    assert control <= set(op.control)
    assert content <= set(op.content)
    assert not set(op.control) & set(op.content)


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("customers.retrieve", {"name", "email", "description", "metadata", "address"}),
        ("customers.list", {"data[].name", "data[].email", "data[].description"}),
        ("charges.retrieve", {"description", "metadata", "billing_details"}),
        ("charges.list", {"data[].description", "data[].billing_details"}),
        ("payment_intents.retrieve", {"description", "metadata"}),
    ],
)
def test_untrusted_response_fields(name: str, fields: set[str]) -> None:
    op = CATALOG.get(name)
    assert op is not None
    assert fields <= set(op.untrusted)


def test_toolkit_has_one_tool_per_operation_and_each_builds_its_operation() -> None:
    token = mint_token("unit", now=time.time(), ttl=60).token
    tools = StripeToolkit(client=BrokerClient("http://127.0.0.1:9", token=token)).get_tools()
    assert sorted(type(t).operation for t in tools) == CATALOG.names  # type: ignore[attr-defined]
    examples: dict[str, dict[str, Any]] = {
        "customers.retrieve": {"customer": "cus_1"},
        "customers.update": {"customer": "cus_1", "name": "A"},
        "payment_intents.retrieve": {"payment_intent": "pi_1"},
        "payment_intents.create": {"amount": 100, "currency": "usd"},
        "payment_intents.confirm": {"payment_intent": "pi_1"},
        "charges.retrieve": {"charge": "ch_1"},
        "refunds.create": {"charge": "ch_1"},
        "refunds.retrieve": {"refund": "re_1"},
    }
    for tool in tools:
        assert isinstance(tool, StripeTool)
        request = tool.build_request(**examples.get(tool.operation, {}))
        found = CATALOG.match(request.method, check_path(request.path))
        assert found is not None and found[0].name == tool.operation
