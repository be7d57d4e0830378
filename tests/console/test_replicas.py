"""Two brokers on one PostgreSQL store: a console session made on one is accepted by
the other, and signing out on one ends it on both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import test_policy
from tests.console.conftest import code_of, post
from tests.pg import PostgresCluster
from vertex_tools.demo.echo import EchoServer
from vertex_tools.local import LocalBroker
from vertex_tools.vault import MasterKey

pytestmark = pytest.mark.slow


def _vertex(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vertex_tools", "--home", str(home), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def pair(
    pg_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory, upstream: EchoServer
) -> Iterator[tuple[Path, dict[str, str], LocalBroker, LocalBroker]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERTEX_")}
    env.update(
        VERTEX_STORE=pg_cluster.create_database(), VERTEX_MASTER_KEY=MasterKey.generate().encode()
    )
    homes = (tmp_path_factory.mktemp("console-a"), tmp_path_factory.mktemp("console-b"))
    inits = [_vertex(home, env, "init") for home in homes]
    assert all(done.returncode == 0 for done in inits), [d.stderr for d in inits]
    assert "schema version 3 (operator console" in inits[0].stdout
    policy = homes[0] / "policy-push.toml"
    policy.write_text(test_policy(upstream.url), encoding="utf-8")
    assert _vertex(homes[0], env, "policy", "push", str(policy)).returncode == 0
    brokers = (
        LocalBroker(homes[0], env=env, listen="tcp"),
        LocalBroker(homes[1], env=env, listen="tcp"),
    )
    for broker in brokers:
        broker.start()
    try:
        yield homes[0], env, brokers[0], brokers[1]
    finally:
        for broker in brokers:
            broker.stop()


def test_a_session_made_on_one_replica_works_on_the_other(
    pair: tuple[Path, dict[str, str], LocalBroker, LocalBroker],
) -> None:
    home, env, first, second = pair
    assert first.url is not None and second.url is not None
    done = _vertex(home, env, "console", "--url", first.url, "--json")
    assert done.returncode == 0, done.stderr
    link = str(json.loads(done.stdout)["url"])
    with httpx.Client(base_url=first.url, trust_env=False) as a:
        assert post(a, "/console/login", {"code": code_of(link)}).status_code == 303
        cookie = a.cookies["vertex_console"]
        page = a.get("/console/audit").text
    with httpx.Client(base_url=second.url, trust_env=False) as b:
        b.cookies.set("vertex_console", cookie)
        assert b.get("/console/audit").status_code == 200
        # The code was spent on the first replica: the second refuses it too.
        assert post(b, "/console/login", {"code": code_of(link)}).status_code == 403
        csrf = page.split('name="csrf" value="', 1)[1][:64]
        assert post(b, "/console/logout", {"csrf": csrf}).status_code == 303
    with httpx.Client(base_url=first.url, trust_env=False) as a:
        a.cookies.set("vertex_console", cookie)
        assert a.get("/console/audit").status_code == 303  # signed out everywhere
