"""Two broker processes (real ``vertex serve``) on one PostgreSQL database, under
concurrent load: every guarantee of one broker still holds for the pair.

The operator side goes through the real CLI (``vertex --store URL ...``) on either
replica's data directory; the two data directories share nothing but the master
key (``VERTEX_MASTER_KEY``) and the database.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from tests.conftest import SECRET, test_policy
from tests.pg import PostgresCluster
from vertex_tools.audit import EntryKind
from vertex_tools.audit._pglog import PostgresAuditLog
from vertex_tools.client import VertexAuth
from vertex_tools.demo.echo import EchoServer
from vertex_tools.local import LocalBroker
from vertex_tools.store.dsn import PostgresDsn
from vertex_tools.store.postgres import PostgresStore
from vertex_tools.vault import MasterKey

pytestmark = pytest.mark.slow

REPLICA_GRANTS = """
[grants.replica-rate]
upstream = "echo"
allow = [ { method = "GET", path = "/items/*" } ]
rate = { per_grant = "4/hour" }
"""


@dataclass
class Team:
    """Two data directories, one database, two running brokers."""

    url: str = field(repr=False)
    env: dict[str, str] = field(repr=False)
    homes: tuple[Path, Path]
    brokers: tuple[LocalBroker, LocalBroker]
    request_ids: list[str] = field(default_factory=list)

    def vertex(self, home: int, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """Run the real CLI on replica ``home``'s data directory; VERTEX_STORE picks the db."""
        return subprocess.run(
            [sys.executable, "-m", "vertex_tools", "--home", str(self.homes[home]), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )

    def issue(self, grant: str, home: int = 0) -> tuple[str, str]:
        done = self.vertex(home, "token", "issue", "--grant", grant, "--ttl", "1h", "--json")
        assert done.returncode == 0, done.stderr
        issued = json.loads(done.stdout)
        return str(issued["id"]), str(issued["token"])

    def call(
        self, replica: int, token: str, method: str, path: str, audited: bool = True, **kw: object
    ) -> str:
        """One signed request through ``replica``; returns "ok" or the refusal reason.
        Its request id is kept for the audit test unless ``audited`` is False."""
        url = self.brokers[replica].url
        assert url is not None
        with httpx.Client(base_url=url, auth=VertexAuth(token), timeout=30) as client:
            response = client.request(method, f"/proxy/echo{path}", **kw)  # type: ignore[arg-type]
        if audited:
            self.request_ids.append(response.headers["vertex-request-id"])
        if response.headers.get("vertex-decision") == "allow":
            return "ok"
        return str(response.json()["error"]["reason"])


@pytest.fixture(scope="module")
def team(
    pg_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory, upstream: EchoServer
) -> Iterator[Team]:
    url = pg_cluster.create_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERTEX_")}
    env.update(VERTEX_STORE=url, VERTEX_MASTER_KEY=MasterKey.generate().encode())
    homes = (tmp_path_factory.mktemp("replica-a"), tmp_path_factory.mktemp("replica-b"))
    brokers = (
        LocalBroker(homes[0], env=env, listen="tcp"),
        LocalBroker(homes[1], env=env, listen="tcp"),
    )
    team = Team(url, env, homes, brokers)
    first = team.vertex(0, "init")
    assert first.returncode == 0, first.stderr
    assert "schema version 1" in first.stdout and pg_cluster.password not in first.stdout
    again = team.vertex(1, "init")  # the second replica: nothing left to migrate
    assert again.returncode == 0 and "schema version" not in again.stdout
    policy = homes[0] / "team-policy.toml"
    policy.write_text(test_policy(upstream.url) + REPLICA_GRANTS, encoding="utf-8")
    pushed = team.vertex(0, "policy", "push", str(policy))
    assert pushed.returncode == 0, pushed.stderr
    put = team.vertex(1, "vault", "put", "echo-key", "--provider", "http", stdin=SECRET)
    assert put.returncode == 0, put.stderr
    for broker in brokers:
        broker.start()
    try:
        yield team
    finally:
        for broker in brokers:
            broker.stop()


def test_an_uninitialised_database_refuses_to_serve_naming_the_fix(
    team: Team, pg_cluster: PostgresCluster
) -> None:
    fresh = pg_cluster.create_database()
    done = team.vertex(0, "--store", fresh, "serve", "--listen", "127.0.0.1:0")
    assert done.returncode == 3, done.stderr
    assert "is not initialised" in done.stderr and "init" in done.stderr
    assert pg_cluster.password not in done.stderr + done.stdout


def test_both_replicas_serve_the_shared_vault_and_tokens(team: Team) -> None:
    _, token = team.issue("echo-writer", home=1)
    assert team.call(0, token, "POST", "/items", json={"amount": 1}) == "ok"
    assert team.call(1, token, "GET", "/items/1") == "ok"


def test_spend_never_passes_the_ceiling_across_replicas(team: Team) -> None:
    # spender: per_day = 6000. 40 concurrent calls of 500 over both replicas: 12 pass.
    tokens = [team.issue("spender")[1] for _ in range(2)]

    def call(i: int) -> str:
        return team.call(i % 2, tokens[i // 2 % 2], "POST", "/items", json={"amount": 500})

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = Counter(pool.map(call, range(40)))
    assert results == {"ok": 12, "spend_window_exceeded": 28}
    with PostgresStore(PostgresDsn(team.url)) as store:
        assert store.spend_used("spender", "usd", time.time() - 3600) == 6000


def test_a_grant_rate_limit_holds_across_replicas(team: Team) -> None:
    # replica-rate: 4 per hour for the whole grant, whichever token and replica.
    tokens = [team.issue("replica-rate")[1] for _ in range(2)]

    def call(i: int) -> str:
        return team.call(i % 2, tokens[i // 2 % 2], "GET", "/items/1")

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        results = Counter(pool.map(call, range(12)))
    assert results == {"ok": 4, "rate_limited": 8}


def test_a_revocation_on_one_replica_refuses_the_next_request_on_the_other(team: Team) -> None:
    token_id, token = team.issue("echo-writer", home=1)
    assert team.call(1, token, "GET", "/items/1") == "ok"
    revoked = team.vertex(0, "token", "revoke", token_id)
    assert revoked.returncode == 0, revoked.stderr
    assert team.call(1, token, "GET", "/items/1") == "token_revoked"
    assert team.call(0, token, "GET", "/items/1") == "token_revoked"


def test_a_pushed_policy_reaches_every_replica(team: Team, upstream: EchoServer) -> None:
    policy = team.homes[1] / "next-policy.toml"
    text = test_policy(upstream.url) + REPLICA_GRANTS
    text += '\n[grants.newcomer]\nupstream = "echo"\n'
    text += 'allow = [ { method = "GET", path = "/items/*" } ]\n'
    policy.write_text(text, encoding="utf-8")
    pushed = team.vertex(1, "policy", "push", str(policy))
    assert pushed.returncode == 0, pushed.stderr
    digest = pushed.stdout.rsplit("digest ", 1)[1].strip(" )\n")
    for broker in team.brokers:  # each polls the database; wait until it has reloaded
        deadline = time.monotonic() + 30
        while httpx.get(f"{broker.url}/healthz").json()["policy"] != digest:
            assert time.monotonic() < deadline, "a replica never picked up the pushed policy"
            time.sleep(0.1)
    _, token = team.issue("newcomer")
    assert team.call(0, token, "GET", "/items/1") == "ok"
    assert team.call(1, token, "GET", "/items/1") == "ok"
    invalid = team.homes[1] / "bad.toml"
    invalid.write_text("version = 1\n[grants.x]\nupstream = 'nowhere'\n", encoding="utf-8")
    refused = team.vertex(1, "policy", "push", str(invalid))
    assert refused.returncode == 1 and "bad.toml" in refused.stderr


def cut_connections(team: Team, admin: str, replica: int, *, refuse_new: bool = False) -> int:
    """Terminate ``replica``'s database connections (as a failover would); with
    ``refuse_new``, also refuse new ones until ``allow_connections``."""
    dbname = urlsplit(team.url).path.lstrip("/")
    with psycopg.connect(admin, autocommit=True) as conn:
        if refuse_new:
            conn.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false'.encode())
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name LIKE %s",
            (dbname, f"% pid={team.brokers[replica].pid}"),
        ).fetchone()
    assert row is not None
    return int(row[0])


def allow_connections(team: Team, admin: str) -> None:
    dbname = urlsplit(team.url).path.lstrip("/")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true'.encode())


def test_a_replica_reconnects_and_without_its_database_fails_closed(
    team: Team, upstream: EchoServer, pg_cluster: PostgresCluster
) -> None:
    _, token = team.issue("echo-writer")
    # Its store, vault, policy and audit-writer connections all cut at once:
    # the next request reconnects each of them and is served.
    assert cut_connections(team, pg_cluster.conninfo, 0) >= 4
    assert team.call(0, token, "GET", "/items/1") == "ok"
    # With no database at all, nothing can be audited, so nothing is forwarded.
    forwarded = len(upstream.received)
    cut_connections(team, pg_cluster.conninfo, 0, refuse_new=True)
    try:
        refused = team.call(0, token, "GET", "/items/1", audited=False)
    finally:
        allow_connections(team, pg_cluster.conninfo)
    assert refused == "audit_unavailable"
    assert len(upstream.received) == forwarded
    assert team.call(0, token, "GET", "/items/1") == "ok"
    assert team.call(1, token, "GET", "/items/1") == "ok"  # the other replica never noticed


def test_the_audit_log_is_one_chain_with_every_request_once(team: Team, tmp_path: Path) -> None:
    verified = team.vertex(1, "audit", "verify", "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["ok"] is True
    checkpoint = tmp_path / "cp.json"
    signed = team.vertex(0, "audit", "checkpoint", "--out", str(checkpoint))
    assert signed.returncode == 0, signed.stderr
    public = team.homes[0] / "checkpoint.pub"
    against = team.vertex(
        1, "audit", "verify", "--checkpoint", str(checkpoint), "--public-key", str(public)
    )
    assert against.returncode == 0, against.stderr

    # An outcome is committed just after its answer (docs/durability.md): wait for the
    # last ones rather than read the log in the moment between.
    deadline = time.monotonic() + 10
    while True:
        with PostgresAuditLog(PostgresDsn(team.url), read_only=True) as log:
            records = list(log.records())
        intents = Counter(r.data.get("request_id") for r in records if r.kind is EntryKind.INTENT)
        outcomes = Counter(r.data.get("request_id") for r in records if r.kind is EntryKind.OUTCOME)
        if set(intents) == set(outcomes) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(team.request_ids) == len(set(team.request_ids)) >= 62  # every call above
    for request_id in team.request_ids:
        assert (intents[request_id], outcomes[request_id]) == (1, 1), request_id
    assert set(intents) == set(outcomes)  # no intent without its outcome, nor the reverse
    brokers = {r.data["broker"] for r in records if r.kind is EntryKind.INTENT}
    starts = [r for r in records if r.data.get("action") == "broker_start"]
    assert len(brokers) == 2 and len(starts) == 2
    assert {r.data.get("action") for r in records} >= {"policy_push", "token_revoke", "vault_put"}
