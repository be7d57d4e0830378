"""A signed call's nonce commits without a flush; its intent entry, which names it,
commits with one before anything is forwarded. So at start the broker puts back
the nonces of recent intents (SQLite store): a power cut that rolled back the
nonce's commit cannot make a forwarded request replayable. The power cut is
simulated by deleting the nonce rows from the real state database between runs."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx

from tests.conftest import make_deployment
from vertex_tools.audit import AuditLog, EntryKind
from vertex_tools.client import VertexAuth
from vertex_tools.demo.echo import EchoServer
from vertex_tools.policy import load_policy


def _nonces(db: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT token_id, nonce FROM nonces").fetchall()
    conn.close()
    return {(str(t), str(n)) for t, n in rows}


def _forget_nonces(db: Path) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM nonces")
    conn.close()


def test_a_forwarded_request_stays_unreplayable_after_its_nonce_is_rolled_back(
    tmp_path: Path, upstream: EchoServer
) -> None:
    deployment = make_deployment(tmp_path / "home", upstream)
    issued = deployment.issue("reader")
    token_id = issued.record.token_id
    skew = load_policy(deployment.home.policy).policy.settings.clock_skew_seconds
    # An intent older than the nonce lifetime (written first: the log is in time order).
    with AuditLog(deployment.home.audit_db, clock=lambda: time.time() - (2 * skew + 1) - 60) as log:
        log.append(EntryKind.INTENT, {"request_id": "old", "token_id": token_id, "nonce": "o" * 22})
    auth = VertexAuth(issued.token)
    with deployment.broker() as broker:
        assert broker.url is not None
        with httpx.Client(base_url=broker.url, trust_env=False) as http:
            signed = next(auth.sync_auth_flow(http.build_request("GET", "/proxy/echo/items/1")))
            assert http.send(signed).status_code == 200
    nonce = signed.headers["Authorization"].split("nonce=")[1].split(",")[0]
    with AuditLog(deployment.home.audit_db, read_only=True) as log:
        intents = [r.data for r in log.records() if r.kind is EntryKind.INTENT]
    assert intents[-1]["nonce"] == nonce and intents[-1]["token_id"] == token_id
    _forget_nonces(deployment.home.state_db)  # what a power cut may roll back

    before = len(upstream.received)
    with deployment.broker() as broker:
        assert broker.url is not None
        restored = _nonces(deployment.home.state_db)
        with httpx.Client(base_url=broker.url, trust_env=False) as http:
            # The same signed request, sent to the broker's new address.
            replay = http.send(
                http.build_request("GET", "/proxy/echo/items/1", headers=dict(signed.headers))
            )
    assert replay.status_code == 401
    assert replay.json()["error"]["reason"] == "replayed_request"
    assert len(upstream.received) == before
    assert (token_id, nonce) in restored
    assert (token_id, "o" * 22) not in restored  # past its lifetime: not put back
