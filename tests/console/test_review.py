"""An adversarial review of the console, kept as its specification: what an outsider,
a manipulated agent or another web site tries, and what each gets."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from tests.audit.conftest import attacker, fill
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
)
from tests.console.test_http import SECURITY, admin_entries
from vertex_tools import BrokerRefused
from vertex_tools.audit import AuditLog
from vertex_tools.console import pages
from vertex_tools.console.timeline import ChainMonitor, ChainStatus, check_chain
from vertex_tools.local import LocalBroker

# helpers ----------------------------------------------------------------------------------


def raw(broker: LocalBroker, request: str) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` byte for byte (no client normalises its path) and read the answer."""
    assert broker.url is not None
    where = urlsplit(broker.url)
    assert where.hostname is not None and where.port is not None
    with socket.create_connection((where.hostname, where.port), timeout=10) as conn:
        conn.sendall(request.replace("\n", "\r\n").encode("latin-1"))
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def get_raw(
    broker: LocalBroker, method: str, target: str, *headers: str
) -> tuple[int, dict[str, str], bytes]:
    assert broker.url is not None
    host = urlsplit(broker.url).netloc
    extra = "".join(f"{h}\n" for h in headers)
    return raw(broker, f"{method} {target} HTTP/1.1\nHost: {host}\n{extra}Connection: close\n\n")


def issued_count(deployment: Deployment) -> int:
    return sum(1 for e in admin_entries(deployment) if e["action"] == "token_issue")


def issue_form(operator: httpx.Client) -> dict[str, str]:
    """The issue form's fields, as the tokens page renders them."""
    page = operator.get("/console/tokens").text
    return {"csrf": csrf_of(page), "once": once_of(page), "grant": "reader", "ttl": "10m"}


# paths and methods ------------------------------------------------------------------------


def test_path_tricks_never_mix_the_console_and_the_proxy(
    deployment: Deployment, broker: LocalBroker, operator: httpx.Client
) -> None:
    cookie = f"Cookie: vertex_console={operator.cookies['vertex_console']}"
    before = len(deployment.upstream.received)
    for target in (
        "/console/../proxy/echo/items/1",
        "/console/%2e%2e/proxy/echo/items/1",
        "/consoleX",
        "//console/audit",
        "/console;x",
        "/console/audit;x",
        "/%63onsole/audit",
        "/console/%61udit",
        "/console/audit/",
        "/console//audit",
        "/proxy/../console/audit",
        "/proxy/echo/../../console/audit",
    ):
        status, _headers, body = get_raw(broker, "GET", target, cookie)
        assert status != 200, target
        assert b"Chain verified" not in body and b'id="timeline"' not in body, target
    assert len(deployment.upstream.received) == before


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "TRACE"])
def test_methods_other_than_get_and_post_are_refused_with_the_strict_headers(
    broker: LocalBroker, operator: httpx.Client, method: str
) -> None:
    cookie = f"Cookie: vertex_console={operator.cookies['vertex_console']}"
    status, headers, _body = get_raw(broker, method, "/console/tokens", cookie)
    assert status == 405 and headers["allow"] == "GET, POST"
    for name, value in SECURITY.items():
        assert headers.get(name) == value, name


def test_the_console_cookie_never_reaches_the_upstream(
    deployment: Deployment, broker: LocalBroker, operator: httpx.Client
) -> None:
    session = operator.cookies["vertex_console"]
    agent = broker.client(deployment.issue("reader").token)
    before = len(deployment.upstream.received)
    agent.get("echo", "/items/1", headers={"Cookie": f"vertex_console={session}; a=b"})
    agent.close()
    sent = deployment.upstream.received[before:]
    assert sent, "the call did not reach the upstream"
    for received in sent:
        assert all(session not in value for _name, value in received.headers)
        assert all(name.lower() != "cookie" for name, _value in received.headers)


def test_a_console_session_is_no_credential_for_holding_a_tool_call(
    broker: LocalBroker, operator: httpx.Client
) -> None:
    answer = operator.post(
        "/vertex/v1/approvals",
        json={"tool": "x", "arguments": {}},
        headers={"Cookie": f"vertex_console={operator.cookies['vertex_console']}"},
    )
    assert answer.status_code in (400, 401, 403)
    assert "approval_id" not in answer.text


def test_a_vertex_token_percent_encoded_in_the_query_is_refused(
    deployment: Deployment, operator: httpx.Client
) -> None:
    token = deployment.issue("reader").token
    encoded = "".join(f"%{b:02X}" for b in token.encode())
    answer = operator.get(f"/console/audit?token={encoded}")
    assert answer.status_code == 403 and "agent credentials" in answer.text
    assert token not in answer.text


# CSRF and forms ---------------------------------------------------------------------------


def test_csrf_variants_are_refused_and_change_nothing(
    deployment: Deployment, broker: LocalBroker, operator: httpx.Client
) -> None:
    form = issue_form(operator)
    before = issued_count(deployment)
    other = sign_in(deployment, broker)
    other_csrf = csrf_of(other.get("/console/tokens").text)
    other.close()
    origin = str(operator.base_url).rstrip("/")
    refused = [
        post(operator, "/console/tokens", {**form, "csrf": ""}),
        post(operator, "/console/tokens", {**form, "csrf": other_csrf}),
        post(operator, "/console/tokens", {**form, "csrf": form["csrf"].upper()}),
        post(operator, "/console/tokens", {**form, "csrf": form["csrf"] + "0"}),
        operator.post("/console/tokens", data=form, headers={"Origin": "null"}),
        operator.post(
            "/console/tokens",
            data=form,
            headers={"Origin": origin, "Sec-Fetch-Site": "same-site"},
        ),
        operator.post("/console/tokens", data=form, headers={"Sec-Fetch-Site": "cross-site"}),
        operator.post("/console/tokens", data=form, headers={"Sec-Fetch-Site": "none"}),
        # Another service on the same host, another port: the same site, not the same origin.
        operator.post("/console/tokens", data=form, headers={"Origin": "http://127.0.0.1:1"}),
        operator.post(
            "/console/tokens",
            data=form,
            headers={"Origin": origin.replace("http://", "https://") + ".evil.example"},
        ),
        # The same origin, but a JSON or multipart body: not the console's forms.
        post(operator, "/console/tokens", {}, json=form),
        operator.post(
            "/console/tokens",
            files={k: (None, v) for k, v in form.items()},
            headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"},
        ),
    ]
    for i, answer in enumerate(refused):
        assert answer.status_code in (403, 415), (i, answer.status_code)
        for name, value in SECURITY.items():
            assert answer.headers.get(name) == value, (i, name)
    assert issued_count(deployment) == before


def test_origin_null_with_sec_fetch_site_same_origin_is_the_browser_s_own_form(
    deployment: Deployment, operator: httpx.Client
) -> None:
    before = issued_count(deployment)
    answer = operator.post(
        "/console/tokens",
        data=issue_form(operator),
        headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"},
    )
    assert answer.status_code == 200 and 'id="new-token"' in answer.text
    assert issued_count(deployment) == before + 1


def test_a_repeated_form_field_is_refused_not_guessed(
    deployment: Deployment, broker: LocalBroker, operator: httpx.Client
) -> None:
    form = issue_form(operator)
    origin = {"Origin": str(operator.base_url).rstrip("/"), "Sec-Fetch-Site": "same-origin"}
    before = issued_count(deployment)
    repeated = [
        *form.items(),
        ("grant", "echo-writer"),
    ]
    answer = operator.post(
        "/console/tokens",
        content=urlencode(repeated),
        headers={**origin, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 400 and "grant" in answer.text
    assert issued_count(deployment) == before
    # Two decisions for one held request: neither is taken.
    deployment.upstream.pages["twice"] = "<p>pay acct_twice</p>"
    agent = broker.client(deployment.issue("browser-approve").token)
    agent.get("echo", "/pages/twice", headers=run("twice"))
    with pytest.raises(BrokerRefused) as held:
        agent.post("echo", "/items", json={"to": "acct_twice", "amount": 5}, headers=run("twice"))
    agent.close()
    approval_id = approval_id_of(held.value)
    csrf = csrf_of(operator.get(f"/console/approvals/{approval_id}").text)
    body = urlencode([("csrf", csrf), ("decision", "deny"), ("decision", "approve")])
    answer = operator.post(
        f"/console/approvals/{approval_id}/decide",
        content=body,
        headers={**origin, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 400
    assert "pending" in operator.get(f"/console/approvals/{approval_id}").text


def test_an_oversized_form_is_refused_before_it_is_read_whole(
    deployment: Deployment, operator: httpx.Client
) -> None:
    before = issued_count(deployment)
    form = issue_form(operator)
    answer = post(operator, "/console/tokens", {**form, "pad": "x" * 100_000})
    assert answer.status_code == 413
    assert issued_count(deployment) == before


def test_get_with_state_changing_parameters_changes_nothing(
    deployment: Deployment, operator: httpx.Client
) -> None:
    form = issue_form(operator)
    before = issued_count(deployment)
    operator.get("/console/tokens", params=form)
    assert operator.get("/console/logout", params={"csrf": form["csrf"]}).status_code == 404
    assert operator.get("/console/audit").status_code == 200  # still signed in
    assert issued_count(deployment) == before


# the issued token -------------------------------------------------------------------------


def test_the_issue_form_cannot_be_posted_twice(
    deployment: Deployment, operator: httpx.Client
) -> None:
    form = issue_form(operator)
    before = issued_count(deployment)
    first = post(operator, "/console/tokens", form)
    assert first.status_code == 200 and 'id="new-token"' in first.text
    # Reload (or Back then resubmit): the browser posts the same form again.
    again = post(operator, "/console/tokens", form)
    assert again.status_code == 409
    assert 'id="new-token"' not in again.text and "vt1." not in again.text
    assert "already" in again.text
    assert issued_count(deployment) == before + 1
    missing = post(operator, "/console/tokens", {k: v for k, v in form.items() if k != "once"})
    assert missing.status_code == 400
    assert issued_count(deployment) == before + 1


def test_no_token_is_shown_outside_the_page_that_issues_it(
    deployment: Deployment, broker: LocalBroker, operator: httpx.Client
) -> None:
    issued = deployment.issue("reader")
    agent = broker.client(issued.token)
    with pytest.raises(BrokerRefused):  # refused at the broker, and audited
        agent.get("echo", "/items/1", params={"note": issued.token})
    agent.close()
    pages_seen = [
        operator.get(p).text
        for p in (
            "/console/tokens",
            "/console/audit",
            "/console/audit.json",
            f"/console/tokens/{issued.record.token_id}/revoke",
            "/console/approvals",
        )
    ]
    for page in pages_seen:
        assert issued.token not in page
        assert "vt1." not in page
    assert issued.record.token_id in pages_seen[0]


# sign-in ----------------------------------------------------------------------------------


def test_two_browsers_racing_with_one_code_get_one_session(
    deployment: Deployment, broker: LocalBroker
) -> None:
    code = code_of(login_link(deployment, broker))
    statuses: list[int] = []
    barrier = threading.Barrier(4)

    def redeem() -> None:
        with client(broker) as http:
            barrier.wait()
            statuses.append(post(http, "/console/login", {"code": code}).status_code)

    threads = [threading.Thread(target=redeem) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [303, 403, 403, 403]


@pytest.mark.parametrize(
    "code", ["", "a", "x" * 43, "é" * 43, "<script>", "a" * 5000, "%00", " " * 43]
)
def test_malformed_codes_are_refused_without_echo(broker: LocalBroker, code: str) -> None:
    with client(broker) as http:
        answer = post(http, "/console/login", {"code": code})
        assert answer.status_code == 403
        assert "vertex_console" not in http.cookies
        if len(code) > 3:
            assert code not in answer.text


def test_a_cookie_planted_before_sign_in_is_replaced(
    deployment: Deployment, broker: LocalBroker
) -> None:
    with client(broker) as http:
        http.cookies.set("vertex_console", "planted-by-someone-else", path="/console")
        assert http.get("/console/audit").status_code == 303
        answer = post(http, "/console/login", {"code": code_of(login_link(deployment, broker))})
        assert answer.status_code == 303
        fresh = answer.cookies["vertex_console"]
        assert fresh != "planted-by-someone-else" and len(fresh) >= 43


def test_sign_out_ends_the_session_server_side(deployment: Deployment, broker: LocalBroker) -> None:
    http = sign_in(deployment, broker)
    cookie = http.cookies["vertex_console"]
    csrf = csrf_of(http.get("/console/tokens").text)
    answer = post(http, "/console/logout", {"csrf": csrf})
    assert answer.status_code == 303 and "Max-Age=0" in answer.headers["set-cookie"]
    http.close()
    # Someone who copied the cookie before sign-out gets nothing with it.
    with client(broker) as thief:
        thief.cookies.set("vertex_console", cookie)
        assert thief.get("/console/audit").status_code == 303
        assert thief.get("/console/audit.json").status_code == 401
        assert post(thief, "/console/tokens", {"csrf": csrf, "grant": "reader"}).status_code == 303


# escaping ---------------------------------------------------------------------------------

HTML = '"><img src=x onerror=alert(1)><script>alert(2)</script>'


def test_agent_text_in_the_timeline_and_filters_is_escaped(
    deployment: Deployment, broker: LocalBroker, operator: httpx.Client
) -> None:
    agent = broker.client(deployment.issue("reader").token)
    with pytest.raises(BrokerRefused):
        agent.get("echo", f"/nope/{HTML}")
    agent.close()
    page = operator.get(
        "/console/audit", params={"grant": HTML, "reason": HTML, "token": HTML, "decision": HTML}
    ).text
    unfiltered = operator.get("/console/audit").text
    for text in (page, unfiltered):
        assert "<img" not in text and "<script>alert" not in text
    feed = operator.get("/console/audit.json")
    assert feed.headers["content-type"].startswith("application/json")
    assert feed.headers["x-content-type-options"] == "nosniff"


def test_a_denial_note_is_escaped(
    deployment: Deployment, broker: LocalBroker, operator: httpx.Client
) -> None:
    deployment.upstream.pages["note"] = "<p>pay acct_note</p>"
    agent = broker.client(deployment.issue("browser-approve").token)
    agent.get("echo", "/pages/note", headers=run("note"))
    with pytest.raises(BrokerRefused) as held:
        agent.post("echo", "/items", json={"to": "acct_note", "amount": 5}, headers=run("note"))
    agent.close()
    approval_id = approval_id_of(held.value)
    csrf = csrf_of(operator.get(f"/console/approvals/{approval_id}").text)
    decided = post(
        operator,
        f"/console/approvals/{approval_id}/decide",
        {"csrf": csrf, "decision": "deny", "note": HTML},
    )
    assert decided.status_code == 303
    for page in (
        operator.get(f"/console/approvals/{approval_id}").text,
        operator.get("/console/audit").text,
    ):
        assert "<img" not in page and "<script>alert" not in page


def test_static_files_and_errors_carry_the_strict_headers(
    broker: LocalBroker, operator: httpx.Client
) -> None:
    answers = [
        operator.get("/console/static/console.css"),
        operator.get("/console/static/console.js"),
        operator.get("/console/static/../app.py"),
        operator.get("/console/static/nope.js"),
        operator.get("/console/approvals/ap_aaaaaaaaaaaaaaaa"),
        operator.get("/console/tokens/tk_aaaaaaaaaaaaaaaa/revoke"),
        post(operator, "/console/tokens", {"csrf": "x"}),
    ]
    for answer in answers:
        for name, value in SECURITY.items():
            assert answer.headers.get(name) == value, (answer.url, name)
        assert "charset=utf-8" in answer.headers["content-type"]
    assert answers[0].headers["content-type"].startswith("text/css")


# actions on things already done -------------------------------------------------------------


def test_revoking_twice_or_a_missing_token_is_a_clear_answer(
    deployment: Deployment, operator: httpx.Client
) -> None:
    issued = deployment.issue("reader")
    csrf = csrf_of(operator.get("/console/tokens").text)
    path = f"/console/tokens/{issued.record.token_id}/revoke"
    assert post(operator, path, {"csrf": csrf}).status_code == 303
    again = post(operator, path, {"csrf": csrf})
    assert again.status_code in (303, 409)
    assert again.headers["content-security-policy"] == SECURITY["content-security-policy"]
    missing = post(operator, "/console/tokens/tk_aaaaaaaaaaaaaaaa/revoke", {"csrf": csrf})
    assert missing.status_code == 404


def test_deciding_an_unknown_approval_is_a_clear_error(operator: httpx.Client) -> None:
    csrf = csrf_of(operator.get("/console/tokens").text)
    answer = post(
        operator,
        "/console/approvals/ap_aaaaaaaaaaaaaaaa/decide",
        {"csrf": csrf, "decision": "approve"},
    )
    assert answer.status_code in (404, 409)
    assert "ap_aaaaaaaaaaaaaaaa" in answer.text


# the chain's status -------------------------------------------------------------------------


def test_a_broken_chain_shows_red_and_names_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with AuditLog(path) as log:
        fill(log, 6)
    conn = attacker(path)
    conn.execute("UPDATE audit_log SET hash = ? WHERE seq = 4", (b"\x01" * 32,))
    conn.close()
    status = check_chain(
        lambda: AuditLog(path, read_only=True), tmp_path / "none.json", tmp_path / "none.pub"
    )
    assert not status.ok and "broken at seq 4" in status.error
    html = pages.chain_html(status)
    assert 'class="card bad"' in html and "BROKEN" in html


def test_the_chain_is_verified_once_for_many_concurrent_pollers() -> None:
    calls = 0

    def check() -> ChainStatus:
        nonlocal calls
        calls += 1
        time.sleep(0.2)
        return ChainStatus(True, 1, 1, "00", time.time())

    async def many() -> list[ChainStatus | None]:
        monitor = ChainMonitor(check, max_age=5.0)
        return await asyncio.gather(*(monitor.status(wait=2.0) for _ in range(50)))

    results = asyncio.run(many())
    assert calls == 1 and all(r is not None and r.ok for r in results)


def test_a_slow_verification_is_not_rerun_back_to_back() -> None:
    """A log that takes D seconds to verify is verified at most every few D seconds,
    not continuously while a console tab polls (one core kept busy for nothing)."""
    calls = 0

    def check() -> ChainStatus:
        nonlocal calls
        calls += 1
        started = time.time()
        time.sleep(0.3)
        return ChainStatus(True, 1, 1, "00", started)

    async def poll_for(seconds: float) -> None:
        monitor = ChainMonitor(check, max_age=0.1)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await monitor.status(wait=0.05)
            await asyncio.sleep(0.02)
        # Let a run still in flight finish before the loop closes.
        await asyncio.sleep(0.35)

    asyncio.run(poll_for(1.5))
    assert calls <= 2, calls


# spend ------------------------------------------------------------------------------------


def test_spend_without_any_ceiling_says_so() -> None:
    page = pages.spend_page([], csrf="c", operator="o").decode()
    assert "No grant in the policy has a spend ceiling" in page
