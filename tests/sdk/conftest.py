"""Fixtures for the official SDKs: each provider's stand-in behind a real broker process,
with grants that accept plain tokens (``bearer = true``) and one that does not.

The SDKs are configured the way the README tells a user to: the broker's
``/proxy/<upstream>`` as base URL, a scoped token as API key. Nothing of ours is
patched; what crossed the broker is read from the stand-ins' records and the
audit log.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.pg import PostgresCluster
from tests.providers.github import conftest as github_fixtures
from tests.providers.github.openapi import OpenAPI
from tests.providers.github.standin import GitHubStandIn
from tests.providers.stripe.standin import STRIPE_KEY, LocalStripe, StripeData
from tests.providers.supabase import conftest as supabase_fixtures
from tests.providers.supabase.postgrest import PostgrestStandIn
from vertex_tools.admin import Admin
from vertex_tools.audit import AuditLog, EntryKind
from vertex_tools.home import Home, init_home
from vertex_tools.local import LocalBroker
from vertex_tools.policy import load_policy

STRIPE_POLICY = """version = 1

[settings]
allow_private_upstreams = ["127.0.0.1"]
read_timeout = "5s"

[upstreams.stripe]
provider = "stripe"
base_url = "{url}"
secret = "stripe-test"

[grants.sdk-support]
upstream = "stripe"
operations = ["customers.list", "customers.retrieve", "customers.create", "refunds.create"]
spend = {{ currency = "usd", per_call = 5000, per_day = 1000000 }}
bearer = true

[grants.sdk-spend]
upstream = "stripe"
operations = ["refunds.create"]
spend = {{ currency = "usd", per_call = 5000, per_day = 6000 }}
bearer = true

[grants.signed-only]
upstream = "stripe"
operations = ["customers.list"]
"""

GITHUB_POLICY = """version = 1

[settings]
allow_private_upstreams = ["127.0.0.1"]
read_timeout = "10s"

[upstreams.github]
provider = "github"
base_url = "{url}"
secret = "github-token"

[grants.sdk-triage]
upstream = "github"
operations = ["issues.get", "issues.list", "issues.comment", "issues.list_comments"]
repos = ["acme/website"]
bearer = true

[grants.signed-only]
upstream = "github"
operations = ["issues.get"]
repos = ["acme/website"]
"""

SUPABASE_POLICY = """version = 1

[settings]
allow_private_upstreams = ["127.0.0.1"]

[upstreams.supabase]
provider = "supabase"
base_url = "{url}"
secret = "supabase-key"

[grants.sdk-reporting]
upstream = "supabase"
operations = ["rows.select", "rows.insert"]
tables = ["orders"]
bearer = true

[grants.signed-only]
upstream = "supabase"
operations = ["rows.select"]
tables = ["orders"]
"""


@dataclass
class SdkDeployment:
    """A data directory with one upstream's policy and secret, and its broker."""

    home: Home
    env: dict[str, str]
    broker: LocalBroker
    upstream: str
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """What an SDK is given instead of the provider's address."""
        assert self.broker.url is not None
        return f"{self.broker.url}/proxy/{self.upstream}"

    def token(self, grant: str) -> str:
        """A fresh token of ``grant``, as plain text (what an SDK is given as its key)."""
        with Admin(self.home, self.env) as admin:
            issued = admin.token_issue(load_policy(self.home.policy), grant, "1h")
        return issued.token

    def audit(self, kind: EntryKind = EntryKind.INTENT) -> list[dict[str, Any]]:
        """Every entry of ``kind`` in the audit log, oldest first."""
        with AuditLog(self.home.audit_db) as log:
            return [dict(r.data) for r in log.records() if r.kind is kind]

    def outcome(self, request_id: str) -> dict[str, Any]:
        """The outcome entry of one request."""
        found = [e for e in self.audit(EntryKind.OUTCOME) if e.get("request_id") == request_id]
        assert len(found) == 1, found
        return found[0]


@contextmanager
def _deploy(
    root: Path, policy: str, secret: tuple[str, str, str], upstream: str
) -> Iterator[SdkDeployment]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERTEX_")}
    home = Home(root)
    init_home(home, environ=env)
    home.policy.write_text(policy, encoding="utf-8")
    with Admin(home, env) as admin:
        admin.vault_put(*secret)
    with LocalBroker(home.root, env=env, listen="tcp") as broker:
        yield SdkDeployment(home, env, broker, upstream)


# Stripe ----------------------------------------------------------------------------------


@dataclass
class StripeSdk:
    """The Stripe deployment, localstripe (shared with tests/providers/stripe) and seed data."""

    deployment: SdkDeployment
    standin: LocalStripe
    data: StripeData


@pytest.fixture(scope="session")
def stripe_sdk(
    tmp_path_factory: pytest.TempPathFactory, localstripe: LocalStripe
) -> Iterator[StripeSdk]:
    policy = STRIPE_POLICY.format(url=localstripe.url)
    data = StripeData.seed(localstripe.url, STRIPE_KEY)
    with _deploy(
        tmp_path_factory.mktemp("sdk-stripe-home"),
        policy,
        ("stripe-test", "stripe", STRIPE_KEY),
        "stripe",
    ) as deployment:
        yield StripeSdk(deployment, localstripe, data)


# GitHub ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def github_spec() -> OpenAPI:
    """GitHub's OpenAPI description (the npm package scripts/setup installs)."""
    try:
        return OpenAPI.load()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


@dataclass
class GitHubSdk:
    """The GitHub deployment and its seeded stand-in."""

    deployment: SdkDeployment
    standin: GitHubStandIn


@pytest.fixture(scope="module")
def github_sdk(
    tmp_path_factory: pytest.TempPathFactory, github_spec: OpenAPI
) -> Iterator[GitHubSdk]:
    token = github_fixtures.TOKEN
    with GitHubStandIn(token, github_spec) as standin:
        github_fixtures.seed(standin)
        with _deploy(
            tmp_path_factory.mktemp("sdk-github-home"),
            GITHUB_POLICY.format(url=standin.url),
            ("github-token", "github", token),
            "github",
        ) as deployment:
            yield GitHubSdk(deployment, standin)
        # What GitHub's description does not allow, in our requests or the stand-in's
        # answers, fails the module.
        assert not standin.take_violations()


# Supabase --------------------------------------------------------------------------------


@dataclass
class SupabaseSdk:
    """The Supabase deployment, the PostgREST stand-in and its database."""

    deployment: SdkDeployment
    standin: PostgrestStandIn
    conninfo: str


@pytest.fixture(scope="session")
def supabase_sdk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupabaseSdk]:
    key = supabase_fixtures.SUPABASE_KEY
    with PostgresCluster() as cluster:
        with psycopg.connect(cluster.conninfo, autocommit=True) as conn:
            conn.execute(supabase_fixtures.SCHEMA)
            conn.execute(supabase_fixtures.SEED)
        with (
            PostgrestStandIn(cluster.conninfo, key) as standin,
            _deploy(
                tmp_path_factory.mktemp("sdk-supabase-home"),
                SUPABASE_POLICY.format(url=standin.url),
                ("supabase-key", "supabase", key),
                "supabase",
            ) as deployment,
        ):
            yield SupabaseSdk(deployment, standin, cluster.conninfo)


@pytest.fixture
def orders(supabase_sdk: SupabaseSdk) -> Iterator[psycopg.Connection[Any]]:
    """A connection to the stand-in's database, the tables freshly seeded."""
    with psycopg.connect(supabase_sdk.conninfo, autocommit=True) as conn:
        conn.execute(supabase_fixtures.SEED)
        yield conn
