"""Shared fixtures: a real data directory, a real stand-in upstream on loopback,
and a real broker process. Nothing is mocked."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.pg import PostgresCluster
from vertex_tools.admin import Admin
from vertex_tools.audit import AuditLog, AuditRecord, EntryKind
from vertex_tools.demo.echo import EchoServer
from vertex_tools.home import Home, init_home, policy_template
from vertex_tools.local import LocalBroker
from vertex_tools.policy import load_policy
from vertex_tools.tokens import IssuedToken

if TYPE_CHECKING:
    from tests.providers.stripe.standin import LocalStripe

# A fake test key, shaped like Stripe's: long enough to drive the masked-form scrubbing.
SECRET = "sk_test_4eC39HqLyjWDarjtT1zdp7dcWxyz"

EXTRA_GRANTS = """
[grants.reader]
upstream = "echo"
allow = [
  { method = "GET", path = "/items/*" },
  { method = "GET", path = "/leak" },
  { method = "GET", path = "/redirect" },
  { method = "GET", path = "/status/*" },
  { method = "GET", path = "/slow" },
  { method = "GET", path = "/big" },
]

[grants.slow-rate]
upstream = "echo"
allow = [ { method = "GET", path = "/items/*" } ]
rate = { per_token = "2/minute" }

[grants.team]
upstream = "echo"
allow = [ { method = "GET", path = "/items/*" } ]
rate = { per_grant = "3/minute" }

[grants.browser]
upstream = "echo"
allow = [ { method = "GET", path = "/pages/*" }, { method = "POST", path = "/items" } ]

[grants.browser-approve]
upstream = "echo"
allow = [ { method = "GET", path = "/pages/*" }, { method = "POST", path = "/items" } ]
taint = { control = "approve" }

[grants.browser-strict]
upstream = "echo"
allow = [ { method = "GET", path = "/pages/*" }, { method = "POST", path = "/items" } ]
taint = { strict = true }

[grants.browser-token-scope]
upstream = "echo"
allow = [ { method = "GET", path = "/pages/*" }, { method = "POST", path = "/items" } ]
taint = { scope = "token" }

[grants.spender]
upstream = "echo"
allow = [ { method = "POST", path = "/items" } ]
spend = { currency = "usd", per_call = 5000, per_day = 6000 }
"""


def test_policy(upstream_url: str) -> str:
    """The README's example policy, pointed at the stand-in, plus grants the tests need."""
    text = policy_template().replace("http://127.0.0.1:9000", upstream_url)
    text = text.replace('# read_timeout = "30s"', 'read_timeout = "2s"')
    text = text.replace("# max_request_bytes = 1048576", "max_request_bytes = 65536")
    text = text.replace("# max_response_bytes = 8388608", "max_response_bytes = 1048576")
    return text + EXTRA_GRANTS


test_policy.__test__ = False  # type: ignore[attr-defined]


OUTCOME_WAIT_S = 10.0
"""How long a test waits for an outcome entry committed after the broker answered."""


@dataclass
class Deployment:
    """A data directory with the test policy, the secret vaulted, and an upstream."""

    home: Home
    env: dict[str, str]
    upstream: EchoServer
    tokens: list[str] = field(default_factory=list)

    def admin(self) -> Admin:
        return Admin(self.home, self.env)

    def issue(self, grant: str = "echo-writer", ttl: str | None = "1h") -> IssuedToken:
        with self.admin() as admin:
            issued = admin.token_issue(load_policy(self.home.policy), grant, ttl)
        self.tokens.append(issued.token)
        return issued

    def revoke(self, token_id: str) -> None:
        with self.admin() as admin:
            admin.token_revoke(token_id)

    def broker(self, listen: str = "tcp") -> LocalBroker:
        return LocalBroker(self.home.root, env=self.env, listen=listen)

    def audit_entries(self, request_id: str) -> list[AuditRecord]:
        """The request's entries once its outcome is in the log.

        The broker answers before the outcome entry is committed (the writer
        group-commits it just after), so a test that reads the log right after
        an answer waits for the outcome rather than racing it.
        """
        deadline = time.monotonic() + OUTCOME_WAIT_S
        while True:
            with AuditLog(self.home.audit_db) as log:
                found = [r for r in log.records() if r.data.get("request_id") == request_id]
            if any(r.kind is EntryKind.OUTCOME for r in found) or time.monotonic() > deadline:
                return found
            time.sleep(0.01)

    def intent(self, request_id: str) -> dict[str, Any]:
        found = [r for r in self.audit_entries(request_id) if r.kind is EntryKind.INTENT]
        assert len(found) == 1, found
        return dict(found[0].data)

    def outcome(self, request_id: str) -> dict[str, Any]:
        found = [r for r in self.audit_entries(request_id) if r.kind is EntryKind.OUTCOME]
        assert len(found) == 1, found
        return dict(found[0].data)


def make_deployment(root: Path, upstream: EchoServer) -> Deployment:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERTEX_")}
    home = Home(root)
    init_home(home, environ=env)
    home.policy.write_text(test_policy(upstream.url), encoding="utf-8")
    deployment = Deployment(home, env, upstream)
    with deployment.admin() as admin:
        admin.vault_put("echo-key", "http", SECRET)
    return deployment


@pytest.fixture(scope="session")
def localstripe() -> Iterator[LocalStripe]:
    """localstripe on 127.0.0.1, fresh store, only the vaulted key accepted. Here, not in
    tests/providers/stripe: localstripe's store is a module global, so every Stripe test
    (provider and SDK ones) shares this one stand-in."""
    # Imported here: localstripe is only loaded by sessions that run Stripe tests.
    from tests.providers.stripe.standin import STRIPE_KEY, LocalStripe

    with LocalStripe(STRIPE_KEY) as standin:
        yield standin


@pytest.fixture(scope="module")
def upstream() -> Iterator[EchoServer]:
    with EchoServer(SECRET) as server:
        yield server


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, upstream: EchoServer) -> Deployment:
    return make_deployment(tmp_path_factory.mktemp("home"), upstream)


@pytest.fixture(scope="module")
def broker(deployment: Deployment) -> Iterator[LocalBroker]:
    with deployment.broker() as running:
        yield running


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster for the whole session, started on first use."""
    with PostgresCluster() as cluster:
        yield cluster
