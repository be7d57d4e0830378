"""Fail closed: when the audit log cannot be written, nothing is forwarded."""

from __future__ import annotations

import sqlite3

import pytest

from tests.conftest import make_deployment
from vertex_tools import BrokerUnavailable
from vertex_tools.audit import AuditLog, verify_log
from vertex_tools.demo.echo import EchoServer


def test_locked_audit_log_means_503_and_nothing_forwarded(
    tmp_path_factory: pytest.TempPathFactory, upstream: EchoServer
) -> None:
    dep = make_deployment(tmp_path_factory.mktemp("locked"), upstream)
    issued = dep.issue("reader")
    with dep.broker() as broker, broker.client(issued.token) as client:
        assert client.get("echo", "/items/1").status_code == 200
        blocker = sqlite3.connect(dep.home.audit_db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        before = len(upstream.received)
        try:
            with pytest.raises(BrokerUnavailable) as info:
                client.get("echo", "/items/1")
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert "audit_unavailable" in str(info.value)
        assert len(upstream.received) == before
        # Once the log is writable again, service resumes and the chain is intact.
        assert client.get("echo", "/items/1").status_code == 200
    with AuditLog(dep.home.audit_db) as log:
        assert verify_log(log).entries > 0


def test_missing_vault_entry_is_503_and_nothing_forwarded(
    tmp_path_factory: pytest.TempPathFactory, upstream: EchoServer
) -> None:
    dep = make_deployment(tmp_path_factory.mktemp("novault"), upstream)
    with dep.admin() as admin:
        admin.vault_remove("echo-key")
    issued = dep.issue("reader")
    before = len(upstream.received)
    with (
        dep.broker() as broker,
        broker.client(issued.token) as client,
        pytest.raises(BrokerUnavailable) as info,
    ):
        client.get("echo", "/items/1")
    assert "secret_unavailable" in str(info.value) and "vertex vault put echo-key" in str(
        info.value
    )
    assert len(upstream.received) == before


def test_an_upstream_name_resolving_to_a_private_address_is_blocked(
    tmp_path_factory: pytest.TempPathFactory, upstream: EchoServer
) -> None:
    dep = make_deployment(tmp_path_factory.mktemp("ssrf"), upstream)
    text = dep.home.policy.read_text()
    text = text.replace(upstream.url, f"http://localhost:{upstream.port}")
    text = text.replace('allow_private_upstreams = ["127.0.0.1"]', "allow_private_upstreams = []")
    dep.home.policy.write_text(text)
    issued = dep.issue("reader")
    before = len(upstream.received)
    with (
        dep.broker() as broker,
        broker.client(issued.token) as client,
        pytest.raises(BrokerUnavailable) as info,
    ):
        client.get("echo", "/items/1")
    assert "upstream_blocked" in str(info.value)
    assert "allow_private_upstreams" in str(info.value)
    assert len(upstream.received) == before


def test_rotating_the_master_key_while_serving_keeps_secrets_usable(
    tmp_path_factory: pytest.TempPathFactory, upstream: EchoServer
) -> None:
    dep = make_deployment(tmp_path_factory.mktemp("rotate"), upstream)
    issued = dep.issue("reader")
    with dep.broker() as broker, broker.client(issued.token) as client:
        assert client.get("echo", "/items/1").json()["authorized"] is True
        with dep.admin() as admin:
            old_id, new_id, count = admin.vault_rotate_key()
        assert (count, old_id != new_id) == (1, True)
        assert client.get("echo", "/items/1").json()["authorized"] is True


def test_read_only_audit_log_means_503_and_nothing_forwarded(
    tmp_path_factory: pytest.TempPathFactory, upstream: EchoServer
) -> None:
    """chattr +i makes the log's files immutable, which binds root too (mode bits do
    not): the broker must refuse everything rather than forward unrecorded."""
    import shutil
    import subprocess

    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("chattr is not installed: scripts/setup installs Debian's e2fsprogs as root")
    dep = make_deployment(tmp_path_factory.mktemp("readonly"), upstream)
    issued = dep.issue("reader")
    with dep.broker() as broker, broker.client(issued.token) as client:
        assert client.get("echo", "/items/1").status_code == 200
        # The database and its write-ahead log; not the -shm index, which SQLite maps
        # into memory (an immutable mapping is a crash, not a write error).
        files = [str(p) for p in dep.home.root.glob("audit.db*") if not str(p).endswith("-shm")]
        done = subprocess.run([chattr, "+i", *files], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"chattr +i needs CAP_LINUX_IMMUTABLE: {done.stderr.decode().strip()}")
        before = len(upstream.received)
        try:
            with pytest.raises(BrokerUnavailable) as info:
                client.get("echo", "/items/1")
        finally:
            subprocess.run([chattr, "-i", *files], check=True)
        assert "audit_unavailable" in str(info.value)
        assert len(upstream.received) == before
        assert client.get("echo", "/items/1").status_code == 200
    with AuditLog(dep.home.audit_db) as log:
        assert verify_log(log).entries > 0
