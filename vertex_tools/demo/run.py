"""``vertex demo``: the whole path on the embedded default, in one command.

A fresh data directory (SQLite), a real local broker process, a real HTTP
stand-in upstream on loopback. It shows an allowed call, blocked calls with
their reasons, revocation, and verifies the audit chain. It checks its own
expectations and exits non-zero if any fails, so CI can run it too.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

from vertex_tools.admin import Admin
from vertex_tools.audit import AuditLog, verify_log
from vertex_tools.client import BrokerClient
from vertex_tools.demo.echo import EchoServer
from vertex_tools.errors import BrokerRefused
from vertex_tools.home import Home, init_home, policy_template
from vertex_tools.local import LocalBroker
from vertex_tools.policy import load_policy

__all__ = ["run_demo"]


def run_demo(home_dir: Path | None = None, *, say: Callable[[str], None] = print) -> int:
    """Run the demo; return 0 when every step did what it should."""
    root = home_dir or Path(tempfile.mkdtemp(prefix="vertex-demo-"))
    home = Home(root.absolute())
    # Its own key and its own SQLite files: the demo must never write its policy,
    # tokens or audit entries into a team's shared store (VERTEX_STORE).
    env = {k: v for k, v in os.environ.items() if k not in ("VERTEX_MASTER_KEY", "VERTEX_STORE")}
    failures = 0

    def expect(ok: bool, what: str) -> None:
        nonlocal failures
        say(f"  {'ok ' if ok else 'FAIL'} {what}")
        failures += 0 if ok else 1

    say(f"1. vertex init --home {home.root}")
    init_home(home, environ=env)
    secret = "sk_test_" + secrets.token_urlsafe(18)  # a fake test key, new every run
    with EchoServer(secret) as upstream:
        say(f"2. a stand-in upstream API on {upstream.url}")
        home.policy.write_text(
            policy_template().replace("http://127.0.0.1:9000", upstream.url), encoding="utf-8"
        )
        loaded = load_policy(home.policy)
        with Admin(home, env) as admin:
            admin.vault_put("echo-key", "http", secret)
            say("3. vertex vault put echo-key --provider http   (the secret, on stdin)")
            issued = admin.token_issue(loaded, "echo-writer", "1h")
            say(f"4. vertex token issue --grant echo-writer     -> {issued.record.token_id}")
        with LocalBroker(home.root, env=env) as broker:
            say(f"5. vertex serve                               -> {broker.url}")
            client = broker.client(issued.token)
            say("6. calls from an agent holding only the token:")
            failures += _calls(client, say, expect)
            with Admin(home, env) as admin:
                admin.token_revoke(issued.record.token_id)
            say(f"   vertex token revoke {issued.record.token_id}")
            _refused(client, "GET", "/items/1", None, "token_revoked", say, expect)
            client.close()
    on_disk = b"".join(p.read_bytes() for p in home.root.rglob("*") if p.is_file())
    expect(
        secret.encode() not in on_disk,
        "the secret is in no file of the data directory, logs included (the vault is sealed)",
    )
    say("7. vertex audit verify")
    with AuditLog(home.audit_db) as log:
        report = verify_log(log)
        for record in log.tail(6):
            d = record.data
            if record.kind.value == "intent":
                say(
                    f"   #{record.seq} {d.get('effect')}: {d.get('reason')} "
                    f"{d.get('method')} {d.get('path')}"
                )
    expect(report.entries > 0, f"audit chain intact: {report.entries} entries")
    say(f"data directory kept at {home.root}")
    say("demo passed" if failures == 0 else f"demo FAILED: {failures} checks")
    return 0 if failures == 0 else 1


def _calls(
    client: BrokerClient, say: Callable[[str], None], expect: Callable[[bool, str], None]
) -> int:
    response = client.get("echo", "/items/1")
    say(f"   GET /items/1 -> {response.status_code} {response.json()}")
    expect(
        response.status_code == 200 and response.json().get("authorized") is True,
        "allowed: the upstream saw the real key, the agent never had it",
    )
    response = client.post("echo", "/items", json={"name": "gift card", "amount": 1500})
    say(f"   POST /items amount=1500 -> {response.status_code}")
    expect(response.status_code == 201, "allowed: within the spend ceiling")
    _refused(client, "DELETE", "/items/1", None, "not_allowed", say, expect)
    _refused(
        client,
        "POST",
        "/items",
        {"name": "yacht", "amount": 900000},
        "spend_per_call_exceeded",
        say,
        expect,
    )
    return 0


def _refused(
    client: BrokerClient,
    method: str,
    path: str,
    body: dict[str, object] | None,
    reason: str,
    say: Callable[[str], None],
    expect: Callable[[bool, str], None],
) -> None:
    try:
        response = client.request(method, "echo", path, json=body)
    except BrokerRefused as exc:
        d = exc.decision
        say(f"   {method} {path} -> refused {exc.status}: {d.reason.value} ({d.rule})")
        say(f"      {d.message}")
        expect(d.reason.value == reason, f"blocked with reason {reason}")
        return
    expect(False, f"{method} {path} should have been refused, got {response.status_code}")
