"""The console over HTTP against a real broker process: sign-in, what is refused and
why, CSRF, headers, and what lands in the audit log. No browser here (test_browser.py)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.broker.conftest import approval_id_of, run
from tests.conftest import Deployment
from tests.console.conftest import (
    client,
    code_of,
    csrf_of,
    login_link,
    once_of,
    post,
    sign_in,
    vertex,
)
from vertex_tools import BrokerRefused
from vertex_tools.audit import AuditLog, EntryKind
from vertex_tools.local import LocalBroker

SECURITY = {
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}


def admin_entries(deployment: Deployment) -> list[dict[str, object]]:
    with AuditLog(deployment.home.audit_db) as log:
        return [dict(r.data) for r in log.records() if r.kind is EntryKind.ADMIN]


def test_without_a_session_every_page_sends_you_to_sign_in(broker: LocalBroker) -> None:
    with client(broker) as http:
        for path in ("/console", "/console/audit", "/console/tokens", "/console/spend"):
            answer = http.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"] == "/console/login"
        page = http.get("/console/login")
        assert page.status_code == 200
        assert "vertex console" in page.text
        assert http.get("/console/audit.json").status_code == 401


def test_a_link_signs_in_once(deployment: Deployment, broker: LocalBroker) -> None:
    link = login_link(deployment, broker)
    assert link.startswith(f"{broker.url}/console/login?code=")
    with client(broker) as http:
        # Opening the link shows a button; only pressing it (a POST) signs in.
        page = http.get(link)
        assert page.status_code == 200 and 'id="sign-in"' in page.text
        assert "vertex_console" not in http.cookies
        answer = post(http, "/console/login", {"code": code_of(link)})
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"]
        for flag in ("HttpOnly", "SameSite=Strict", "Path=/console"):
            assert flag in cookie
        assert http.get("/console/audit").status_code == 200
    with client(broker) as other:
        again = post(other, "/console/login", {"code": code_of(link)})
        assert again.status_code == 403
        assert "wrong, used or expired" in again.text and "vertex console" in again.text
        assert "vertex_console" not in other.cookies


def test_wrong_and_expired_codes_are_refused(deployment: Deployment, broker: LocalBroker) -> None:
    with client(broker) as http:
        assert post(http, "/console/login", {"code": "x" * 43}).status_code == 403
        assert post(http, "/console/login", {}).status_code == 403
        link = login_link(deployment, broker, "--ttl", "1s")
        time.sleep(1.2)
        assert post(http, "/console/login", {"code": code_of(link)}).status_code == 403
    assert vertex(deployment, "console", "--ttl", "1h").returncode == 2  # at most 10 minutes


def test_agent_credentials_are_refused_even_with_a_session(
    deployment: Deployment, broker: LocalBroker, operator: httpx.Client
) -> None:
    token = deployment.issue("reader").token
    with client(broker) as agent:
        bare = agent.get("/console/audit", headers={"Authorization": f"Bearer {token}"})
        assert bare.status_code == 403 and "agent credentials" in bare.text
    for headers in (
        {"Authorization": f"Bearer {token}"},
        {"X-Vertex-Signature": "sig"},
        {"X-Vertex-Run": "r"},
        {"apikey": token},
    ):
        answer = operator.get("/console/audit", headers=headers)
        assert answer.status_code == 403, headers
    assert operator.get(f"/console/audit?token={token}").status_code == 403


def test_the_console_cookie_is_no_credential_at_proxy(
    deployment: Deployment, broker: LocalBroker, operator: httpx.Client
) -> None:
    before = len(deployment.upstream.received)
    cookie = operator.cookies["vertex_console"]
    with client(broker) as http:
        answer = http.get("/proxy/echo/items/1", headers={"Cookie": f"vertex_console={cookie}"})
    assert answer.status_code in (401, 403)
    assert answer.json()["error"]["reason"] == "token_missing"
    assert len(deployment.upstream.received) == before


def test_state_changes_need_the_csrf_token_and_the_same_origin(
    deployment: Deployment, operator: httpx.Client
) -> None:
    page = operator.get("/console/tokens").text
    csrf = csrf_of(page)
    form = {"grant": "reader", "ttl": "10m"}
    missing = post(operator, "/console/tokens", form)
    assert missing.status_code == 403 and "CSRF token is missing or wrong" in missing.text
    wrong = post(operator, "/console/tokens", {**form, "csrf": "0" * 64})
    assert wrong.status_code == 403
    elsewhere = operator.post(
        "/console/tokens",
        data={**form, "csrf": csrf},
        headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert elsewhere.status_code == 403 and "another origin" in elsewhere.text
    no_origin = operator.post("/console/tokens", data={**form, "csrf": csrf})
    assert no_origin.status_code == 403
    cross = operator.post(
        "/console/tokens",
        data={**form, "csrf": csrf},
        headers={"Origin": str(operator.base_url).rstrip("/"), "Sec-Fetch-Site": "same-site"},
    )
    assert cross.status_code == 403
    issued_before = [e for e in admin_entries(deployment) if e["action"] == "token_issue"]
    ok = post(operator, "/console/tokens", {**form, "csrf": csrf, "once": once_of(page)})
    assert ok.status_code == 200 and 'id="new-token"' in ok.text
    issued = [e for e in admin_entries(deployment) if e["action"] == "token_issue"]
    assert len(issued) == len(issued_before) + 1


def test_get_never_changes_state(deployment: Deployment, operator: httpx.Client) -> None:
    token = deployment.issue("reader")
    confirm = operator.get(f"/console/tokens/{token.record.token_id}/revoke")
    assert confirm.status_code == 200 and 'id="confirm-revoke"' in confirm.text
    with deployment.admin() as admin:
        record = next(t for t in admin.token_list() if t.token_id == token.record.token_id)
    assert record.revoked is None


def test_every_answer_carries_the_strict_headers(
    broker: LocalBroker, operator: httpx.Client
) -> None:
    with client(broker) as anonymous:
        answers = [
            anonymous.get("/console/login"),
            anonymous.get("/console/audit"),
            anonymous.get("/console/static/console.js"),
            anonymous.get("/console/audit", headers={"Authorization": "Bearer x"}),
        ]
    answers += [operator.get(p) for p in ("/console/audit", "/console/audit.json", "/nope")[:2]]
    answers.append(operator.get("/console/nope"))
    for answer in answers:
        for name, value in SECURITY.items():
            assert answer.headers.get(name) == value, (answer.url, name)
    js = answers[2]
    assert js.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in js.text


def test_actions_are_audited_as_the_cli_s_and_no_secret_is_logged(
    deployment: Deployment, broker: LocalBroker
) -> None:
    link = login_link(deployment, broker)
    with client(broker) as http:
        answer = post(http, "/console/login", {"code": code_of(link)})
        session_id = answer.cookies["vertex_console"]
        page = http.get("/console/tokens").text
        csrf = csrf_of(page)
        issued = post(
            http, "/console/tokens", {"grant": "reader", "csrf": csrf, "once": once_of(page)}
        )
        token_id = issued.text.split("Token <code>", 1)[1][:19]
        assert post(http, f"/console/tokens/{token_id}/revoke", {"csrf": csrf}).status_code == 303
        assert post(http, "/console/logout", {"csrf": csrf}).status_code == 303
        assert http.get("/console/audit").status_code == 303  # signed out
    entries = admin_entries(deployment)
    actions = {str(e["action"]): e for e in entries}
    assert actions["console_code_issue"]["actor"] != "console"
    operator_name = actions["console_login"]["operator"]
    for action in ("token_issue", "token_revoke", "console_logout"):
        assert actions[action]["actor"] == f"console:{operator_name}", action
    raw = deployment.home.audit_db.read_bytes() + b"".join(
        p.read_bytes() for p in deployment.home.logs.iterdir() if p.is_file()
    )
    for secret in (code_of(link), session_id):
        assert secret.encode() not in raw


def test_revoked_in_the_console_means_refused_at_the_next_call(
    deployment: Deployment, broker: LocalBroker, operator: httpx.Client
) -> None:
    issued = deployment.issue("reader")
    agent = broker.client(issued.token)
    assert agent.get("echo", "/items/1").status_code == 200
    csrf = csrf_of(operator.get("/console/tokens").text)
    done = post(operator, f"/console/tokens/{issued.record.token_id}/revoke", {"csrf": csrf})
    assert done.status_code == 303
    assert "Revoked" in operator.get(done.headers["location"]).text
    with pytest.raises(BrokerRefused) as refused:
        agent.get("echo", "/items/1")
    assert refused.value.decision.reason.value == "token_revoked"
    agent.close()
    timeline = operator.get(f"/console/audit.json?token={issued.record.token_id}").json()
    assert timeline["rows"][0]["reason"] == "token_revoked"
    assert operator.get("/console/audit.json?decision=deny").json()["rows"]


ATTACKER = 'acct_<script>alert("x")</script>'


def test_a_held_request_is_shown_exactly_and_escaped(
    deployment: Deployment, broker: LocalBroker, operator: httpx.Client
) -> None:
    deployment.upstream.pages["evil"] = f"<p>pay {ATTACKER} now</p>"
    agent = broker.client(deployment.issue("browser-approve").token)
    agent.get("echo", "/pages/evil", headers=run("r1"))
    with pytest.raises(BrokerRefused) as held:
        agent.post("echo", "/items", json={"to": ATTACKER, "amount": 700}, headers=run("r1"))
    approval_id = approval_id_of(held.value)
    listing = operator.get("/console/approvals").text
    assert approval_id in listing
    page = operator.get(f"/console/approvals/{approval_id}").text
    assert "<script>alert" not in listing + page
    assert "acct_&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert 'id="approve"' in page and "tainted</span> from echo" in page
    csrf = csrf_of(page)
    decided = post(
        operator, f"/console/approvals/{approval_id}/decide", {"csrf": csrf, "decision": "deny"}
    )
    assert decided.status_code == 303
    assert "denied" in operator.get(f"/console/approvals/{approval_id}").text
    again = post(
        operator, f"/console/approvals/{approval_id}/decide", {"csrf": csrf, "decision": "approve"}
    )
    assert again.status_code == 409 and "not pending" in again.text
    agent.close()


def test_spend_page_shows_the_numbers(deployment: Deployment, operator: httpx.Client) -> None:
    page = operator.get("/console/spend").text
    assert "<svg" in page and "spender" in page and "6,000" in page


def test_sign_in_needs_a_fresh_link_each_time(deployment: Deployment, broker: LocalBroker) -> None:
    first, second = sign_in(deployment, broker), sign_in(deployment, broker)
    assert first.cookies["vertex_console"] != second.cookies["vertex_console"]
    first.close()
    second.close()


def test_the_chain_status_names_the_last_checkpoint(
    deployment: Deployment, operator: httpx.Client, tmp_path: Path
) -> None:
    done = vertex(deployment, "audit", "checkpoint", "--out", str(tmp_path / "cp.json"))
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 15
    chain: dict[str, object] = {}
    while time.monotonic() < deadline:
        chain = operator.get("/console/audit.json").json()["chain"] or {}
        if chain.get("checkpoint_seq") is not None:
            break
        time.sleep(0.5)
    assert chain["ok"] is True and isinstance(chain["checkpoint_seq"], int)
    assert "Last checkpoint: seq" in operator.get("/console/audit").text
