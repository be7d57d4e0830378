"""langchain_tests' standard suites for every Stripe tool.

Unit suites build each tool on a client that is never called. Integration suites
run each tool against the real broker and localstripe (session fixtures), with
arguments that name objects the fixtures created; on top of the standard tests,
each checks that its example really went through (or, for confirm, was refused
for the documented reason).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.tools import BaseTool
from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests

from tests.providers.stripe.conftest import StripeDeployment
from tests.providers.stripe.standin import StripeData
from vertex_tools.client import BrokerClient
from vertex_tools.providers.stripe.toolkit import StripeToolkit
from vertex_tools.providers.tool import VertexTool
from vertex_tools.tokens import mint_token

# Never contacted: unit suites only build tools and check their schemas.
_OFFLINE = BrokerClient(
    "http://127.0.0.1:9", token=mint_token("unit", now=time.time(), ttl=3600).token
)

OFFLINE_EXAMPLES: dict[str, dict[str, Any]] = {
    "customers.list": {"email": "ada@example.com", "limit": 5},
    "customers.retrieve": {"customer": "cus_123"},
    "customers.create": {"name": "Ada Lovelace", "email": "ada@example.com"},
    "customers.update": {"customer": "cus_123", "metadata": {"tier": "gold"}},
    "payment_intents.list": {"customer": "cus_123", "limit": 3},
    "payment_intents.retrieve": {"payment_intent": "pi_123"},
    "payment_intents.create": {"amount": 1500, "currency": "usd", "customer": "cus_123"},
    "payment_intents.confirm": {"payment_intent": "pi_123"},
    "charges.list": {"customer": "cus_123"},
    "charges.retrieve": {"charge": "ch_123"},
    "refunds.create": {"charge": "ch_123", "amount": 500, "reason": "requested_by_customer"},
    "refunds.list": {"charge": "ch_123"},
    "refunds.retrieve": {"refund": "re_123"},
    "balance.retrieve": {},
}


class Live:
    """Objects the integration examples name, made afresh for each test."""

    def __init__(self, data: StripeData) -> None:
        self.data = data
        self.charge = data.charge(10000, description="standard tests")
        self.refund = data.refund(self.charge, 100)


LIVE_EXAMPLES: dict[str, Callable[[Live], dict[str, Any]]] = {
    "customers.list": lambda live: {"limit": 2},
    "customers.retrieve": lambda live: {"customer": live.data.customer},
    "customers.create": lambda live: {"name": "Standard Test", "metadata": {"suite": "lc"}},
    "customers.update": lambda live: {"customer": live.data.customer, "phone": "+15555550100"},
    "payment_intents.list": lambda live: {"limit": 3},
    "payment_intents.retrieve": lambda live: {"payment_intent": live.data.payment_intent},
    "payment_intents.create": lambda live: {
        "amount": 1000,
        "currency": "usd",
        "customer": live.data.customer,
    },
    "payment_intents.confirm": lambda live: {"payment_intent": live.data.open_intent(700)},
    "charges.list": lambda live: {"customer": live.data.customer, "limit": 3},
    "charges.retrieve": lambda live: {"charge": live.charge},
    "refunds.create": lambda live: {"charge": live.charge, "amount": 100},
    "refunds.list": lambda live: {"charge": live.charge},
    "refunds.retrieve": lambda live: {"refund": live.refund},
    "balance.retrieve": lambda live: {},
}


def _unit_suite(cls: type[VertexTool]) -> type:
    class Suite(ToolsUnitTests):
        @property
        def tool_constructor(self) -> type[BaseTool]:
            return cls

        @property
        def tool_constructor_params(self) -> dict[str, Any]:
            return {"client": _OFFLINE, "upstream": "stripe"}

        @property
        def tool_invoke_params_example(self) -> dict[str, Any]:
            return OFFLINE_EXAMPLES[cls.operation]

    Suite.__name__ = Suite.__qualname__ = f"TestUnit{cls.__name__}"
    return Suite


def _integration_suite(cls: type[VertexTool]) -> type:
    class Suite(ToolsIntegrationTests):
        live_tool: BaseTool
        live: Live

        @pytest.fixture(autouse=True)
        def _live(self, stripe_env: StripeDeployment) -> None:
            tools = stripe_env.tools("all-tools")
            self.live_tool = next(t for t in tools.values() if isinstance(t, cls))
            self.live = Live(stripe_env.data)

        @property
        def tool_constructor(self) -> BaseTool:
            return self.live_tool

        @property
        def tool_invoke_params_example(self) -> dict[str, Any]:
            return LIVE_EXAMPLES[cls.operation](self.live)

        def test_example_went_through(self) -> None:
            out = self.live_tool.invoke(self.tool_invoke_params_example)
            assert out.startswith("{") and '"error"' not in out[:20], out

    Suite.__name__ = Suite.__qualname__ = f"TestIntegration{cls.__name__}"
    return Suite


for _cls in StripeToolkit.tool_classes:
    globals()[f"TestUnit{_cls.__name__}"] = _unit_suite(_cls)
    globals()[f"TestIntegration{_cls.__name__}"] = _integration_suite(_cls)
