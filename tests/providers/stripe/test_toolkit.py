"""The Stripe tools as objects: what the model sees, and that the token is never in it."""

from __future__ import annotations

import json
import time

import pytest
from langchain_core.tools import BaseTool

from vertex_tools import BrokerUnavailable
from vertex_tools.client import BrokerClient
from vertex_tools.providers.stripe import StripeToolkit as LazyStripeToolkit
from vertex_tools.providers.stripe._args import form
from vertex_tools.providers.stripe.toolkit import StripeTool, StripeToolkit
from vertex_tools.tokens import mint_token


@pytest.fixture(scope="module")
def token() -> str:
    return mint_token("unit", now=time.time(), ttl=3600).token


@pytest.fixture(scope="module")
def tools(token: str) -> list[BaseTool]:
    # Port 9 (discard): nothing listens, so a call fails as an unreachable broker.
    return StripeToolkit(client=BrokerClient("http://127.0.0.1:9", token=token)).get_tools()


def test_lazy_export_is_the_toolkit() -> None:
    assert LazyStripeToolkit is StripeToolkit


def test_the_token_is_in_no_schema_repr_or_serialisation(token: str, tools: list[BaseTool]) -> None:
    toolkit = StripeToolkit(client=BrokerClient("http://127.0.0.1:9", token=token))
    views = [repr(toolkit), str(toolkit), toolkit.model_dump_json(), repr(toolkit.model_dump())]
    for tool in tools:
        views += [
            repr(tool),
            str(tool),
            tool.model_dump_json(),
            repr(tool.model_dump()),
            json.dumps(tool.args),
            json.dumps(tool.tool_call_schema.model_json_schema()),  # type: ignore[union-attr]
            json.dumps(tool.get_input_schema().model_json_schema()),  # type: ignore[union-attr]
        ]
    secret_part = token.rsplit(".", 1)[-1]
    for view in views:
        assert secret_part not in view
    assert "client" not in json.loads(toolkit.model_dump_json())
    for tool in tools:
        assert "client" not in json.loads(tool.model_dump_json())


def test_every_tool_is_named_described_and_has_described_arguments(tools: list[BaseTool]) -> None:
    names = [t.name for t in tools]
    assert len(set(names)) == len(names) == 14
    for tool in tools:
        assert tool.name.startswith("stripe_")
        assert len(tool.description) > 60
        schema = tool.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
        assert schema.get("additionalProperties") is not True
        for prop, spec in schema.get("properties", {}).items():
            assert spec.get("description"), (tool.name, prop)


def test_upstream_name_is_passed_to_every_tool(token: str) -> None:
    client = BrokerClient("http://127.0.0.1:9", token=token)
    tools = StripeToolkit(client=client, upstream="stripe-eu").get_tools()
    assert {t.upstream for t in tools if isinstance(t, StripeTool)} == {"stripe-eu"}


def test_an_unreachable_broker_is_an_error_for_the_builder(
    token: str, tools: list[BaseTool]
) -> None:
    balance = next(t for t in tools if t.name == "stripe_retrieve_balance")
    with pytest.raises(BrokerUnavailable) as info:
        balance.invoke({})
    assert token.rsplit(".", 1)[-1] not in str(info.value)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("stripe_retrieve_customer", {"customer": "cus_1/../../v1/payouts"}),
        ("stripe_retrieve_charge", {"charge": "ch_1?expand=x"}),
        ("stripe_create_refund", {"charge": "ch_1", "amount": -5}),
        ("stripe_create_refund", {"charge": "ch_1", "amount": 1.5}),
        ("stripe_create_payment_intent", {"amount": 100, "currency": "USD dollars"}),
        ("stripe_update_customer", {"customer": "cus_1", "metadata": {"a[b]": "x"}}),
        ("stripe_list_customers", {"limit": 1000}),
    ],
)
def test_arguments_that_could_change_the_request_are_rejected(
    tools: list[BaseTool], name: str, args: dict[str, object]
) -> None:
    tool = next(t for t in tools if t.name == name)
    with pytest.raises(ValueError, match="validation error"):
        tool.invoke(args)


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("stripe_create_refund", {}, "Give exactly one of charge"),
        ("stripe_create_refund", {"charge": "ch_1", "payment_intent": "pi_1"}, "exactly one"),
        ("stripe_update_customer", {"customer": "cus_1"}, "Nothing to update"),
    ],
)
def test_argument_mistakes_are_told_to_the_model(
    tools: list[BaseTool], name: str, args: dict[str, object], message: str
) -> None:
    tool = next(t for t in tools if t.name == name)
    assert message in tool.invoke(args)


def test_form_encoding_is_stripes() -> None:
    assert form(
        {"amount": 1500, "confirm": True, "customer": None, "metadata": {"order": "42"}}
    ) == {"amount": "1500", "confirm": "true", "metadata[order]": "42"}
