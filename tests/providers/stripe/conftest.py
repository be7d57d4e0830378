"""Stripe fixtures: localstripe on loopback, a data directory whose policy names it,
the test key vaulted, a real broker process, and tools built on tokens it issued.

Session-scoped: one stand-in and one broker for every Stripe test. Spend ceilings
are per grant and per day, so each spend test uses a grant of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import BaseTool

from tests.providers.stripe.standin import LocalStripe, StripeData
from vertex_tools.admin import Admin
from vertex_tools.audit import AuditLog, EntryKind
from vertex_tools.client import BrokerClient
from vertex_tools.home import Home, init_home
from vertex_tools.local import LocalBroker
from vertex_tools.policy import load_policy
from vertex_tools.providers.stripe import StripeToolkit

# Shaped like a Stripe test key, long enough for the broker's masked-form scrubbing.
STRIPE_KEY = "sk_test_51VertexStandInKey0123456789abcdefXYZ"

ALL_OPERATIONS = [
    "customers.list",
    "customers.retrieve",
    "customers.create",
    "customers.update",
    "payment_intents.list",
    "payment_intents.retrieve",
    "payment_intents.create",
    "payment_intents.confirm",
    "charges.list",
    "charges.retrieve",
    "refunds.create",
    "refunds.list",
    "refunds.retrieve",
    "balance.retrieve",
]


def stripe_policy(base_url: str) -> str:
    """The issue's example grant, plus one grant per spend scenario."""
    everything = ", ".join(f'"{name}"' for name in ALL_OPERATIONS)
    return f"""\
version = 1

[settings]
allow_private_upstreams = ["127.0.0.1"]
read_timeout = "5s"

[upstreams.stripe]
provider = "stripe"
base_url = "{base_url}"
secret = "stripe-test"

[grants.support-agent]
upstream = "stripe"
operations = ["customers.list", "customers.retrieve", "refunds.create"]
spend = {{ currency = "usd", per_call = 5000, per_day = 20000 }}

[grants.all-tools]
upstream = "stripe"
operations = [{everything}]
spend = {{ currency = "usd", per_call = 1000000, per_day = 100000000 }}

[grants.refunds-day]
upstream = "stripe"
operations = ["refunds.create"]
spend = {{ currency = "usd", per_call = 5000, per_day = 6000 }}

[grants.refunds-rest]
upstream = "stripe"
operations = ["refunds.create"]
spend = {{ currency = "usd", per_call = 5000, per_day = 100000 }}

[grants.refunds-intent]
upstream = "stripe"
operations = ["refunds.create"]
spend = {{ currency = "usd", per_call = 5000, per_day = 100000 }}

[grants.confirmer]
upstream = "stripe"
operations = ["payment_intents.confirm"]
spend = {{ currency = "usd", per_call = 5000, per_day = 100000 }}

[grants.payer]
upstream = "stripe"
operations = ["payment_intents.create", "payment_intents.confirm"]
spend = {{ currency = "usd", per_call = 5000, per_day = 8000 }}
"""


@dataclass
class StripeDeployment:
    """A data directory with the Stripe policy, the key vaulted, and the stand-in."""

    home: Home
    env: dict[str, str]
    standin: LocalStripe
    data: StripeData
    tokens: list[str] = field(default_factory=list)
    broker: LocalBroker | None = None

    def issue(self, grant: str) -> str:
        """A fresh token for ``grant``."""
        with Admin(self.home, self.env) as admin:
            issued = admin.token_issue(load_policy(self.home.policy), grant, "1h")
        self.tokens.append(issued.token)
        return issued.token

    def client(self, grant: str) -> BrokerClient:
        """A broker client holding a fresh token for ``grant``."""
        assert self.broker is not None
        return self.broker.client(self.issue(grant))

    def tools(self, grant: str) -> dict[str, BaseTool]:
        """Every Stripe tool, by name, on a fresh token for ``grant``."""
        toolkit = StripeToolkit(client=self.client(grant))
        return {tool.name: tool for tool in toolkit.get_tools()}

    def intents(self, grant: str) -> list[dict[str, Any]]:
        """The audit log's intent entries of ``grant``, oldest first."""
        with AuditLog(self.home.audit_db) as log:
            return [
                dict(r.data)
                for r in log.records()
                if r.kind is EntryKind.INTENT and r.data.get("grant") == grant
            ]


@pytest.fixture(scope="package")
def localstripe() -> Iterator[LocalStripe]:
    """localstripe on 127.0.0.1, fresh store, only the vaulted key accepted.

    Package scope: localstripe allows one stand-in per process, and the scenario
    world (tests/scenarios, tests/replay) starts its own after this package is done."""
    with LocalStripe(STRIPE_KEY) as standin:
        yield standin


@pytest.fixture(scope="package")
def stripe_env(
    tmp_path_factory: pytest.TempPathFactory, localstripe: LocalStripe
) -> Iterator[StripeDeployment]:
    """The deployment, its test data, and a running broker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERTEX_")}
    home = Home(Path(tmp_path_factory.mktemp("stripe-home")))
    init_home(home, environ=env)
    home.policy.write_text(stripe_policy(localstripe.url), encoding="utf-8")
    with Admin(home, env) as admin:
        admin.vault_put("stripe-test", "stripe", STRIPE_KEY)
    data = StripeData.seed(localstripe.url, STRIPE_KEY)
    deployment = StripeDeployment(home, env, localstripe, data)
    with LocalBroker(home.root, env=env, listen="tcp") as broker:
        deployment.broker = broker
        yield deployment
