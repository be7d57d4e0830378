"""``vertex --store postgresql://...``: the operator commands on a shared database,
run as a user would (the real command in a fresh process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.pg import PostgresCluster
from vertex_tools.home import policy_template

SECRET = "sk_test_storeCli51LkqPq2XbZ8nRt3Vw"


class Vertex:
    """``vertex --home HOME [--store URL] ...`` with a clean environment."""

    def __init__(self, home: Path, store: str | None) -> None:
        self.home = home
        self.store = store
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VERTEX_")}

    def __call__(
        self, *args: str, stdin: str = "", code: int = 0
    ) -> subprocess.CompletedProcess[str]:
        store = ["--store", self.store] if self.store else []
        result = subprocess.run(
            [sys.executable, "-m", "vertex_tools", "--home", str(self.home), *store, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )
        assert result.returncode == code, (args, result.returncode, result.stderr)
        return result


@pytest.fixture
def url(pg_cluster: PostgresCluster) -> str:
    return pg_cluster.create_database()


def test_the_operator_commands_work_on_a_shared_database(
    url: str, tmp_path: Path, pg_cluster: PostgresCluster
) -> None:
    vertex = Vertex(tmp_path / "home", url)
    first = vertex("init")
    assert "schema version 1" in first.stdout and "schema version 2" in first.stdout
    assert pg_cluster.password not in first.stdout + first.stderr
    assert not (tmp_path / "home" / "vertex.db").exists()  # the state is in the database
    assert "already initialised" in vertex("init").stdout
    no_policy = vertex("token", "issue", "--grant", "echo-writer", code=3)
    assert "policy push" in no_policy.stderr and pg_cluster.password not in no_policy.stderr
    policy = tmp_path / "policy.toml"
    policy.write_text(policy_template(), encoding="utf-8")
    assert "policy version 1" in vertex("policy", "push", str(policy)).stdout
    vertex("vault", "put", "echo-key", "--provider", "http", stdin=SECRET)
    assert json.loads(vertex("vault", "list", "--json").stdout)[0]["name"] == "echo-key"
    issued = json.loads(vertex("token", "issue", "--grant", "echo-writer", "--json").stdout)
    listed = json.loads(vertex("token", "list", "--json").stdout)
    assert [t["id"] for t in listed] == [issued["id"]]
    vertex("token", "revoke", issued["id"])
    tail = [json.loads(line) for line in vertex("audit", "tail", "--json").stdout.splitlines()]
    actions = [entry["data"]["action"] for entry in tail]
    assert actions == ["policy_push", "vault_put", "token_issue", "token_revoke"]
    assert "ok: 4 entries" in vertex("audit", "verify").stdout
    with psycopg.connect(url) as conn:  # nothing secret landed in the database
        dump = conn.execute("SELECT string_agg(entry::text, '') FROM audit_log").fetchone()
        assert SECRET not in str(dump) and issued["token"] not in str(dump)


def test_verify_names_the_entry_an_attacker_changed(url: str, tmp_path: Path) -> None:
    vertex = Vertex(tmp_path / "home", url)
    vertex("init")
    for name in ("a", "b", "c"):
        vertex("vault", "put", name, "--provider", "http", stdin=SECRET)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        conn.execute(
            "UPDATE audit_log SET entry = convert_to(replace(convert_from(entry, 'UTF8'), "
            '\'"name":"b"\', \'"name":"x"\'), \'UTF8\') WHERE seq = 2'
        )
    broken = vertex("audit", "verify", code=1)
    assert "seq 2" in broken.stderr and "hash" in broken.stderr


def test_store_mistakes_are_refused_with_the_fix_and_no_password(tmp_path: Path) -> None:
    sqlite = Vertex(tmp_path / "home", None)
    sqlite("init")
    pushed = sqlite("policy", "push", str(tmp_path / "home" / "policy.toml"), code=3)
    assert "--store postgresql://" in pushed.stderr
    wrong = Vertex(tmp_path / "home", "mysql://u:hunter2@db/x")
    refused = wrong("token", "list", code=3)
    assert "postgresql://user@host/db" in refused.stderr and "hunter2" not in refused.stderr
    shared = Vertex(tmp_path / "home", "postgresql://u:hunter2@127.0.0.1:1/x")
    down = shared("token", "list", code=3)
    assert "cannot connect" in down.stderr and "hunter2" not in down.stderr
    policy = shared("serve", "--policy", "p.toml", code=2)
    assert "vertex policy push" in policy.stderr


def test_a_broker_refuses_a_database_newer_than_it_knows(url: str, tmp_path: Path) -> None:
    vertex = Vertex(tmp_path / "home", url)
    vertex("init")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version VALUES (999, 'from the future', 0, 'x')")
    refused = vertex("serve", "--listen", "127.0.0.1:0", code=3)
    assert "schema version 999" in refused.stderr and "upgrade vertex_tools" in refused.stderr


def test_the_demo_never_touches_a_shared_store(tmp_path: Path) -> None:
    refused = Vertex(tmp_path / "home", "postgresql://u@db/x")("demo", code=2)
    assert "drop --store" in refused.stderr
