"""Regression tests from an adversarial review: one test per attack, against a real
broker process.

``test_fN_*`` each reproduce a hole the review found (the docstring describes the
attack and the fix that closed it); ``test_ok_*`` are attacks that held from the start.
Some findings need an upstream that misbehaves in a way the echo stand-in does not
(malformed framing, odd encodings, Range, spoofed broker headers): ``RawUpstream``
is a real HTTP/1.1 server on a loopback socket, not a mock.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gzip
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import httpx
import pytest

from tests.conftest import SECRET, Deployment, make_deployment
from vertex_tools.audit import EntryKind
from vertex_tools.client import VertexAuth
from vertex_tools.demo.echo import EchoServer
from vertex_tools.errors import AuditUnavailable, BrokerRefused, BrokerUnavailable
from vertex_tools.local import LocalBroker
from vertex_tools.store import SqliteStore
from vertex_tools.tokens import mint_token

Handler = Callable[[str, str, dict[str, str]], bytes]


class RawUpstream:
    """A real HTTP/1.1 server on 127.0.0.1 whose answer bytes a test writes by hand.

    ``handler(method, target, headers)`` gets the request (header names lower-case)
    and returns the complete response bytes; the connection is closed after each.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(32)
        self.port = int(self._sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> RawUpstream:
        self._thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
                    method, target = head[0].split(" ")[:2]
                    headers = {}
                    for line in head[1:]:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                    conn.sendall(self._handler(method, target, headers))
                except (OSError, ValueError):
                    continue


def _response(status: str, body: bytes, *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


@pytest.fixture
def deployment_for(
    tmp_path_factory: pytest.TempPathFactory, upstream: EchoServer
) -> Callable[[str], Deployment]:
    """A fresh deployment whose `echo` upstream points at ``url`` instead."""

    def make(url: str) -> Deployment:
        dep = make_deployment(tmp_path_factory.mktemp("review"), upstream)
        dep.home.policy.write_text(dep.home.policy.read_text().replace(upstream.url, url))
        return dep

    return make


def _signed(http: httpx.Client, token: str, method: str, path: str, **kw: object) -> httpx.Request:
    request = http.build_request(method, path, **kw)  # type: ignore[arg-type]
    return next(VertexAuth(token).sync_auth_flow(request))


def _raw(broker: LocalBroker) -> httpx.Client:
    assert broker.url is not None and broker.url.startswith("http://")
    return httpx.Client(base_url=broker.url, trust_env=False, timeout=10)


# ---------------------------------------------------------------------------------------
# F1 (high): spend released when the upstream DID act -> daily ceiling passed


def test_f1_spend_not_released_when_the_upstream_may_have_charged(
    tmp_path_factory: pytest.TempPathFactory, upstream: EchoServer
) -> None:
    """pipeline.py `_fail` releases the reservation on every UpstreamError, including
    "response larger than max_response_bytes" (and read timeouts), which happen AFTER
    the upstream executed the call. Here per_day = 6000 but three 5000 charges reach
    the upstream. Fix: release only when nothing can have reached the upstream
    (connect refused / blocked); on oversize, timeout or a broken response keep the
    reservation (commit it, or leave it 'reserved' = unknown)."""
    dep = make_deployment(tmp_path_factory.mktemp("spend-oversize"), upstream)
    text = dep.home.policy.read_text()
    dep.home.policy.write_text(
        text.replace("max_response_bytes = 1048576", "max_response_bytes = 2000")
    )
    issued = dep.issue("spender")  # per_call 5000, per_day 6000
    marker = f"f1-{time.time_ns()}"
    with dep.broker() as broker, broker.client(issued.token) as client:
        for _ in range(3):
            # 502 (oversize answer), then 403 (the held 5000 fills the window); what
            # counts is what reached the upstream
            with contextlib.suppress(BrokerUnavailable, BrokerRefused):
                client.post("echo", "/items", json={"amount": 5000, "note": marker * 200})
    charged = [
        r
        for r in upstream.received
        if r.method == "POST"
        and marker.encode() in r.body
        and json.loads(r.body).get("amount") == 5000
    ]
    assert len(charged) <= 1, f"{len(charged)} x 5000 reached the upstream; per_day is 6000"


# ---------------------------------------------------------------------------------------
# F2 (high): upstream parser errors echo raw response bytes, unscrubbed, to the agent


@pytest.mark.parametrize(
    "make",
    [
        lambda auth: f"{auth} 200 OK\r\nContent-Length: 0\r\n\r\n".encode(),
        lambda auth: f"HTTP/1.1 200 OK\r\nContent-Length: {auth}\r\n\r\n".encode(),
        lambda auth: f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{auth}\r\n".encode(),
    ],
    ids=["status-line", "content-length", "chunk-size"],
)
def test_f2_upstream_error_messages_never_carry_the_secret(
    deployment_for: Callable[[str], Deployment], make: Callable[[str], bytes]
) -> None:
    """forward.py:147 puts `{exc}` of aiohttp's ClientResponseError into the 502
    message; aiohttp quotes the offending response line, so an upstream that reflects
    the Authorization header into a malformed response hands the agent the secret.
    The refusal message is never passed through the Scrubber. Fix: never put library
    exception text in agent-facing messages (type name only), and scrub every
    refusal body built on the forwarding path with the request's Scrubber."""
    with RawUpstream(lambda m, t, h: make(h.get("authorization", ""))) as raw:
        dep = deployment_for(raw.url)
        issued = dep.issue("reader")
        with dep.broker() as broker, _raw(broker) as http:
            response = http.send(_signed(http, issued.token, "GET", "/proxy/echo/items/1"))
    assert response.status_code == 502
    assert SECRET not in response.text
    assert SECRET[8:24] not in response.text


# ---------------------------------------------------------------------------------------
# F3 (medium): a compressed body aiohttp did not decode is passed on unscrubbed


@pytest.mark.parametrize("encoding", ["x-gzip", "gzip, identity"])
def test_f3_compressed_body_in_an_undecoded_encoding_is_refused(
    deployment_for: Callable[[str], Deployment], encoding: str
) -> None:
    """aiohttp decodes only a single gzip/deflate/br/zstd; for any other
    Content-Encoding it hands back the compressed bytes. The Scrubber cannot see into
    them, and headers.py then DROPS Content-Encoding, so the agent gets a gzip blob
    holding the secret. Fix: if the upstream sent any Content-Encoding that was not
    decoded (or auto_decompress off + an explicit allowlist), answer 502."""

    def handler(method: str, target: str, headers: dict[str, str]) -> bytes:
        body = gzip.compress(
            b'{"error": "Invalid API key provided: '
            + headers.get("authorization", "").encode()
            + b'"}'
        )
        return _response(
            "401 Unauthorized", body, f"Content-Encoding: {encoding}", "Content-Type: text/plain"
        )

    with RawUpstream(handler) as raw:
        dep = deployment_for(raw.url)
        issued = dep.issue("reader")
        with dep.broker() as broker, _raw(broker) as http:
            response = http.send(_signed(http, issued.token, "GET", "/proxy/echo/leak"))
    try:
        data = gzip.decompress(response.content)
    except (OSError, EOFError):
        data = response.content
    assert SECRET.encode() not in data


# ---------------------------------------------------------------------------------------
# F4 (medium): Range is forwarded, so a reflected secret can be read in unscrubbable slices


def test_f4_range_cannot_slice_a_reflected_secret(
    deployment_for: Callable[[str], Deployment],
) -> None:
    """headers.py REQUEST_HEADER_ALLOWLIST forwards `range`. Each 10-byte slice of a
    response that quotes the key is too short to be recognised (no mask, no whole
    form), so every slice passes the Scrubber and the agent reassembles the key.
    Fix: do not forward Range/If-Range (or refuse 206 answers on upstreams with a
    secret), since scrubbing needs the whole representation."""

    def handler(method: str, target: str, headers: dict[str, str]) -> bytes:
        body = (
            b'{"error": "Invalid API key provided: '
            + headers.get("authorization", "").encode()
            + b'"}'
        )
        spec = headers.get("range", "")
        if spec.startswith("bytes="):
            first, last = (int(x) for x in spec[6:].split("-"))
            part = body[first : last + 1]
            return _response(
                "206 Partial Content", part, f"Content-Range: bytes {first}-{last}/{len(body)}"
            )
        return _response("401 Unauthorized", body)

    with RawUpstream(handler) as raw:
        dep = deployment_for(raw.url)
        issued = dep.issue("reader")
        with dep.broker() as broker, _raw(broker) as http:
            whole = http.send(_signed(http, issued.token, "GET", "/proxy/echo/leak"))
            assert SECRET not in whole.text  # the scrubber works on the whole body
            got = b""
            for first in range(44, 84, 10):
                request = _signed(
                    http,
                    issued.token,
                    "GET",
                    "/proxy/echo/leak",
                    headers={"Range": f"bytes={first}-{first + 9}"},
                )
                got += http.send(request).content
    assert SECRET.encode() not in got


# ---------------------------------------------------------------------------------------
# F5 (medium): forwarded request headers are not covered by the signature


def test_f5_forwarded_headers_are_bound_by_the_signature(
    deployment: Deployment, broker: LocalBroker
) -> None:
    """signing.py canonical_request signs method, target, content-type, body and
    x-vertex-* only; every other allowlisted header (Prefer, Accept-Profile,
    Content-Profile, Range, If-Match, Stripe-Version...) is forwarded unsigned. Anyone
    on the path between client and broker (an HTTP transport, a logging proxy) can
    add `Accept-Profile` (PostgREST schema switch: a control argument) or `Prefer:
    resolution=merge-duplicates` (insert -> upsert) and the signature still verifies.
    Fix: sign every forwarded header (name:value, sorted) or forward none unsigned."""
    issued = deployment.issue("reader")
    with _raw(broker) as http:
        signed = _signed(http, issued.token, "GET", "/proxy/echo/items/1")
        signed.headers["Accept-Profile"] = "private"
        signed.headers["Prefer"] = "resolution=merge-duplicates"
        response = http.send(signed)
    if response.status_code == 200:
        last = deployment.upstream.received[-1]
        assert last.header("Accept-Profile") is None and last.header("Prefer") is None, (
            "headers added after signing were forwarded"
        )
    else:
        assert response.json()["error"]["reason"] == "bad_signature"


# ---------------------------------------------------------------------------------------
# F6 (medium): `..;` path segments pass the "no dot segments" check


def test_f6_dot_semicolon_segments_are_refused(deployment: Deployment, broker: LocalBroker) -> None:
    """policy/paths.py check_path refuses '.' and '..' but not '..;' (or '.;'), which
    Tomcat/Jetty/Spring treat as '..' after stripping the path parameter: a rule
    `/repos/acme/**` then reaches `/repos/acme/..;/other-org/...`, and `/items/*`
    reaches `/items/..;` = `/`. Fix: refuse any segment whose part before ';'
    (after percent-decoding) is '.' or '..', or refuse ';' in segments outright."""
    issued = deployment.issue("reader")
    before = len(deployment.upstream.received)
    with _raw(broker) as http:
        response = http.send(_signed(http, issued.token, "GET", "/proxy/echo/items/..;"))
    assert response.status_code == 403
    assert response.json()["error"]["reason"] == "bad_path"
    assert len(deployment.upstream.received) == before


# ---------------------------------------------------------------------------------------
# F7 (medium): upstream status codes outside 200..599 crash the response / hang clients


@pytest.mark.parametrize("code", ["799", "101"])
def test_f7_odd_upstream_status_is_a_clean_502(
    deployment: Deployment, broker: LocalBroker, code: str
) -> None:
    """pipeline.py returns `Outgoing(response.status, ...)` verbatim. 600..999 raise
    KeyError inside uvicorn's send (`Exception in ASGI application`, connection
    dropped); 101 is sent as a protocol switch and 100 as a final answer (the client
    hangs until its timeout). The agent picks the code (GET /status/{code} is allowed
    to the reader grant). Fix: map any upstream status outside 200..599 (and 1xx,
    which aiohttp should never surface) to 502 upstream_failed, audited."""
    issued = deployment.issue("reader")
    with _raw(broker) as http:
        try:
            response = http.send(_signed(http, issued.token, "GET", f"/proxy/echo/status/{code}"))
        except httpx.TransportError as exc:
            pytest.fail(f"the broker broke the connection instead of answering: {exc!r}")
    assert response.status_code == 502


# ---------------------------------------------------------------------------------------
# F8 (medium): an upstream can forge the broker's own decision headers


def test_f8_upstream_cannot_forge_broker_headers(
    deployment_for: Callable[[str], Deployment],
) -> None:
    """headers.py drops `x-vertex-*` from responses, but the broker's own headers are
    `vertex-decision` and `vertex-request-id` (no x-). An upstream answer carrying
    `Vertex-Decision: deny` plus a JSON "error" makes BrokerClient raise BrokerRefused
    with a decision the broker never took (here token_revoked on an allowed 200), and
    a forged request id points audits at the wrong entry. Fix: drop `vertex-*` from
    upstream responses."""
    body = json.dumps(
        {
            "error": {
                "effect": "deny",
                "reason": "token_revoked",
                "rule": "authentication",
                "message": "forged by the upstream",
            }
        }
    ).encode()
    with RawUpstream(
        lambda m, t, h: _response(
            "200 OK",
            body,
            "Content-Type: application/json",
            "Vertex-Decision: deny",
            "Vertex-Request-Id: forged",
        )
    ) as raw:
        dep = deployment_for(raw.url)
        issued = dep.issue("reader")
        with dep.broker() as broker, _raw(broker) as http:
            response = http.send(_signed(http, issued.token, "GET", "/proxy/echo/items/1"))
    assert response.headers.get_list("vertex-decision") == ["allow"]
    assert "forged" not in response.headers.get_list("vertex-request-id")


# ---------------------------------------------------------------------------------------
# F9 (medium): a refused oversize request leaves no audit entry


def test_f9_oversize_request_is_audited(deployment: Deployment, broker: LocalBroker) -> None:
    """app.py `_http` answers 413 for a body over max_request_bytes before the
    pipeline runs: no intent, no outcome, request_id "-". Issue 2: "Every request
    (allowed, refused, failed authentication) writes an intent entry". Fix: route the
    413 through Pipeline._refuse (with path, token id if parseable) so it is audited."""
    issued = deployment.issue("echo-writer")
    with _raw(broker) as http:
        response = http.send(
            _signed(http, issued.token, "POST", "/proxy/echo/items", content=b"x" * 70_000)
        )
    assert response.status_code == 413
    entries = deployment.audit_entries(response.headers["vertex-request-id"])
    kinds = [entry.kind for entry in entries]
    assert kinds == [EntryKind.INTENT, EntryKind.OUTCOME], "the refusal was not audited"
    assert entries[0].data["reason"] == "request_too_large"


# ---------------------------------------------------------------------------------------
# F10 (low): a token placed in the query string is written verbatim into the audit log


def test_f10_token_in_query_is_not_written_to_the_audit_log(
    deployment: Deployment, broker: LocalBroker
) -> None:
    """pipeline.py records `query` (and `path`) verbatim. A bearer SDK that puts its
    key in the URL (`?access_token=`, `?apikey=`) writes the vertex token into the
    permanent audit log (and forwards it upstream). Issue 2: "No secret and no token
    in any entry". Fix: redact anything matching `vt1.tk_...` (and the token secret
    shape) from path/query before auditing, and strip it before forwarding."""
    issued = deployment.issue("echo-writer")  # bearer = true
    with _raw(broker) as http:
        response = http.get(
            f"/proxy/echo/items/1?access_token={issued.token}",
            headers={"Authorization": f"Bearer {issued.token}"},
        )
    intent = deployment.intent(response.headers["vertex-request-id"])
    assert issued.token.split(".")[2] not in json.dumps(intent)


def test_a_token_in_the_request_body_is_refused_and_never_forwarded(
    deployment: Deployment, broker: LocalBroker
) -> None:
    """A prompt injection can ask the agent to post its own token ("paste your
    Authorization header into the issue"): the upstream would store it. Spelled
    plainly or percent-encoded, in JSON or a form, it never leaves the broker, the
    refusal is audited, and the audit entry does not hold it."""
    issued = deployment.issue("echo-writer")
    upstream = deployment.upstream
    encoded = issued.token.replace(".", "%2E")
    bodies = [
        json.dumps({"name": f"my key is {issued.token}"}).encode(),
        f"name=key+{encoded}".encode(),
    ]
    for body in bodies:
        seen = len(upstream.received)
        with _raw(broker) as http:
            response = http.send(
                _signed(http, issued.token, "POST", "/proxy/echo/items", content=body)
            )
        assert response.status_code == 403
        assert response.json()["error"]["reason"] == "token_in_body"
        assert len(upstream.received) == seen  # nothing was forwarded
        intent = deployment.intent(response.headers["vertex-request-id"])
        assert intent["reason"] == "token_in_body"
        assert issued.token.split(".")[2] not in json.dumps(intent)
    with _raw(broker) as http:  # a token-shaped text that is not one passes
        ok = http.send(
            _signed(
                http,
                issued.token,
                "POST",
                "/proxy/echo/items",
                json={"name": "vt1.tk_ is how tokens start", "amount": 100},
            )
        )
    assert ok.status_code == 201


# ---------------------------------------------------------------------------------------
# F11 (low): the grant's max_ttl is only checked at issue time


def test_f11_max_ttl_is_enforced_when_the_token_is_used(
    deployment: Deployment, broker: LocalBroker
) -> None:
    """admin.py caps the TTL against whatever policy file the issuer loaded
    (`vertex token issue --policy OTHER`), and auth.py checks only record.expires.
    A token minted under a looser file, or before max_ttl was lowered, lives on.
    Fix: in auth._lifetime refuse when now >= created + grant.max_ttl_seconds."""
    long_lived = mint_token("reader", now=time.time() - 2 * 86400, ttl=30 * 86400)
    store = SqliteStore(deployment.home.state_db)
    store.add_token(long_lived.record)
    store.close()
    with _raw(broker) as http:
        response = http.send(_signed(http, long_lived.token, "GET", "/proxy/echo/items/1"))
    assert response.status_code == 401  # reader's max_ttl is 24h; this one is 2 days old


# ---------------------------------------------------------------------------------------
# F12 (low): admin actions happen even when they cannot be audited


def test_f12_admin_action_is_not_done_when_it_cannot_be_audited(
    tmp_path_factory: pytest.TempPathFactory, upstream: EchoServer
) -> None:
    """admin.py performs the action first and audits after (vault_put, vault_rm,
    token_issue, token_revoke, rotate): with the audit log locked, the vault entry is
    written and no admin entry ever records it. Fix: append the admin intent first
    (fail -> nothing done), then an outcome."""
    dep = make_deployment(tmp_path_factory.mktemp("admin-audit"), upstream)
    admin = dep.admin()
    blocker = sqlite3.connect(dep.home.audit_db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(AuditUnavailable):
            admin.vault_put("sneaky", "http", "sk_test_unaudited_value_123456")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    names = [e.name for e in admin.vault_list()]
    admin.close()
    assert "sneaky" not in names, "the vault changed with no audit entry"


# ---------------------------------------------------------------------------------------
# F13 (low): `vertex token revoke` echoes a full token pasted by mistake


def test_f13_revoke_with_a_full_token_does_not_echo_it(tmp_path: Path) -> None:
    """admin.py token_revoke: `{token_id!r} is not a token id` prints the whole token
    (to a terminal, CI log or shell capture) and does not revoke it. Fix: accept a
    full token and revoke its id, or refuse without quoting the value."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERTEX_")}
    env["VERTEX_HOME"] = str(tmp_path / "vhome")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vertex_tools", *args],
            input="",
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    run("init")
    issued = json.loads(run("token", "issue", "--grant", "echo-writer", "--json").stdout)
    result = run("token", "revoke", issued["token"])
    secret = issued["token"].split(".")[2]
    assert secret not in result.stdout + result.stderr


# ---------------------------------------------------------------------------------------
# Verified guarantees (these pass): attacked and held


def test_ok_one_signed_request_sent_concurrently_is_forwarded_once(
    deployment: Deployment, broker: LocalBroker
) -> None:
    issued = deployment.issue("reader")
    with _raw(broker) as http:
        signed = _signed(http, issued.token, "GET", "/proxy/echo/items/1")
        headers = dict(signed.headers)
    assert broker.url is not None
    url = broker.url + "/proxy/echo/items/1"
    before = len(deployment.upstream.received)

    def send(_: int) -> int:
        return httpx.get(url, headers=headers, trust_env=False).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(send, range(24)))
    assert statuses.count(200) == 1 and statuses.count(401) == 23
    assert len(deployment.upstream.received) == before + 1


def test_ok_per_grant_rate_holds_under_concurrency(
    tmp_path_factory: pytest.TempPathFactory, upstream: EchoServer
) -> None:
    dep = make_deployment(tmp_path_factory.mktemp("rate-race"), upstream)
    tokens = [dep.issue("team") for _ in range(8)]  # per_grant = 3/minute
    with dep.broker() as broker:

        def call(i: int) -> int:
            with _raw(broker) as http:
                request = _signed(http, tokens[i % 8].token, "GET", "/proxy/echo/items/1")
                return http.send(request).status_code

        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(call, range(24)))
    assert statuses.count(200) == 3 and statuses.count(429) == 21


def test_ok_allowed_call_has_one_intent_one_outcome_and_no_secret(
    deployment: Deployment, broker: LocalBroker
) -> None:
    """Allowed calls get exactly one intent and one outcome, and neither holds the
    provider secret or the token, even for /leak which reflects the secret."""
    issued = deployment.issue("reader")
    with broker.client(issued.token) as client:
        response = client.get("echo", "/leak")
    request_id = response.headers["vertex-request-id"]
    entries = deployment.audit_entries(request_id)
    assert sorted(e.kind for e in entries) == sorted([EntryKind.INTENT, EntryKind.OUTCOME])
    text = json.dumps([dict(e.data) for e in entries])
    assert SECRET not in text and issued.token.split(".")[2] not in text
