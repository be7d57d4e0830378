"""Hostile HTTP inputs against a running broker (issue 7: "HTTP" and "Credentials").

Every request here is written as raw bytes on a loopback socket to the broker's
port, and the answer's status line is parsed by hand, so no client library
normalises, re-frames or refuses anything on our behalf.

For each hostile shape the broker must answer 4xx or close the connection (never
2xx, never 5xx, never hang: every read is bounded by a socket timeout), the
stand-in upstream must receive nothing for it, and ``GET /healthz`` must still
answer 200 afterwards. Each shape carries a valid bearer token on a path the
grant allows (``test_control_*`` proves the same request, minus the hostile part,
is forwarded), so a shape the broker failed to notice would reach the upstream.

Timing of token checks is not asserted here (tests never assert timings): see
``benchmarks/token_timing.py``.
"""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import SECRET, Deployment, make_deployment
from vertex_tools.demo.echo import EchoServer
from vertex_tools.local import LocalBroker
from vertex_tools.signing import sign_request
from vertex_tools.tokens import derive_signing_key, parse_token

# Bigger than the shared test policy's 64 KiB so 100k nested brackets reach the amount
# reader; the oversize shapes are computed from this value.
MAX_REQUEST_BYTES = 262144
ANSWER_TIMEOUT = 10.0  # no answer and no close within this: the broker hangs
GRACE = 0.75  # after an answer, how long to wait for a second (smuggled) one
SLOW_BOUND = 20.0  # a stalled request must be closed or answered within this
JSON_BODY = b'{"amount": 1}'  # an allowed POST /items on echo-writer (1 cent)


# ---------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, upstream: EchoServer) -> Deployment:
    """The shared test deployment, with max_request_bytes raised to MAX_REQUEST_BYTES."""
    dep = make_deployment(tmp_path_factory.mktemp("hostile"), upstream)
    text = dep.home.policy.read_text("utf-8")
    assert "max_request_bytes = 65536" in text
    dep.home.policy.write_text(
        text.replace("max_request_bytes = 65536", f"max_request_bytes = {MAX_REQUEST_BYTES}"),
        encoding="utf-8",
    )
    return dep


@pytest.fixture(scope="module")
def port(broker: LocalBroker) -> int:
    assert broker.url is not None and broker.url.startswith("http://127.0.0.1:")
    return int(broker.url.rsplit(":", 1)[1])


# ---------------------------------------------------------------------------------------
# raw HTTP over a socket


@dataclass
class Exchange:
    """What came back on one connection."""

    statuses: list[int] = field(default_factory=list)
    closed: bool = False
    raw: bytes = b""

    @property
    def hung(self) -> bool:
        return not self.statuses and not self.closed

    def describe(self) -> str:
        return f"statuses={self.statuses} closed={self.closed} raw={self.raw[:600]!r}"


def _take_response(buf: bytes, *, eof: bool) -> tuple[int, bytes] | None:
    """Split one complete response off ``buf``: (status, rest); None if incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return (-1, b"") if eof and buf else None
    head = buf[:end].decode("latin-1")
    status_line, *header_lines = head.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        return -1, b""  # not an HTTP/1 answer at all: counted as a failure
    length: int | None = None
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    rest = buf[end + 4 :]
    if length is None:
        return (int(parts[1]), b"") if eof else None  # body runs to the close
    if len(rest) < length:
        return (int(parts[1]), b"") if eof else None
    return int(parts[1]), rest[length:]


def exchange(
    port: int,
    parts: Sequence[bytes],
    *,
    pause: float = 0.0,
    timeout: float = ANSWER_TIMEOUT,
    grace: float = GRACE,
) -> Exchange:
    """Send ``parts`` (``pause`` seconds apart) and read every answer until the broker
    closes, ``grace`` seconds pass after an answer, or ``timeout`` passes without one."""
    result = Exchange()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for i, part in enumerate(parts):
            if i and pause:
                time.sleep(pause)
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break  # the broker stopped listening: read what it said
        buf = b""
        deadline = time.monotonic() + timeout
        while True:
            while (taken := _take_response(buf, eof=False)) is not None:
                status, buf = taken
                result.statuses.append(status)
                deadline = min(deadline, time.monotonic() + grace)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                result.closed = True
                if (last := _take_response(buf, eof=True)) is not None:
                    result.statuses.append(last[0])
                break
            buf += chunk
            result.raw += chunk
    return result


def healthz(port: int) -> int:
    answer = exchange(
        port,
        [b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"],
    )
    return answer.statuses[0] if answer.statuses else 0


def chunked(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def fill(template: bytes, *, token: str, host: str) -> bytes:
    return template.replace(b"@TOKEN@", token.encode()).replace(b"@HOST@", host.encode())


def assert_refused_and_nothing_forwarded(
    deployment: Deployment, port: int, parts: Sequence[bytes], **kwargs: Any
) -> Exchange:
    before = len(deployment.upstream.received)
    answer = exchange(port, parts, **kwargs)
    time.sleep(0.1)  # anything the broker was still forwarding has landed
    forwarded = deployment.upstream.received[before:]
    assert not answer.hung, f"the broker neither answered nor closed: {answer.describe()}"
    assert answer.statuses or answer.closed
    for status in answer.statuses:
        # 505 HTTP Version Not Supported is the one refusal outside 4xx.
        refused = 400 <= status < 500 or status == 505
        assert refused, f"expected 4xx, 505 or a close: {answer.describe()}"
    assert not forwarded, (
        f"the upstream received {[(r.method, r.path, r.query) for r in forwarded]}; "
        f"{answer.describe()}"
    )
    assert healthz(port) == 200
    return answer


# ---------------------------------------------------------------------------------------
# the table

GET = b"GET /proxy/echo/items/1 HTTP/1.1\r\nHost: @HOST@\r\n"
AUTH = b"Authorization: Bearer @TOKEN@\r\n"
SMUGGLED = b"GET /proxy/echo/items/1 HTTP/1.1\r\nHost: @HOST@\r\n" + AUTH + b"\r\n"
POST = (
    b"POST /proxy/echo/items HTTP/1.1\r\nHost: @HOST@\r\n"
    + AUTH
    + b"Content-Type: application/json\r\n"
)
BIG = MAX_REQUEST_BYTES + 1
BIG_BODY = b'{"amount": 1, "pad": "' + b"x" * BIG + b'"}'

HOSTILE: list[Any] = [
    # CR, LF and NUL in the path: raw
    pytest.param(
        b"GET /proxy/echo/items/1\rX HTTP/1.1\r\nHost: @HOST@\r\n" + AUTH + b"\r\n",
        id="path-raw-cr",
    ),
    pytest.param(
        b"GET /proxy/echo/items/1\nX HTTP/1.1\r\nHost: @HOST@\r\n" + AUTH + b"\r\n",
        id="path-raw-lf",
    ),
    pytest.param(
        b"GET /proxy/echo/items/1\r\nX-Injected: yes HTTP/1.1\r\nHost: @HOST@\r\n" + AUTH + b"\r\n",
        id="path-raw-crlf",
    ),
    pytest.param(
        b"GET /proxy/echo/items/1\x00x HTTP/1.1\r\nHost: @HOST@\r\n" + AUTH + b"\r\n",
        id="path-raw-nul",
    ),
    # ... and percent-encoded
    pytest.param(
        b"GET /proxy/echo/items/1%0d HTTP/1.1\r\nHost: @HOST@\r\n" + AUTH + b"\r\n",
        id="path-pct-cr",
    ),
    pytest.param(
        b"GET /proxy/echo/items/1%0A HTTP/1.1\r\nHost: @HOST@\r\n" + AUTH + b"\r\n",
        id="path-pct-lf",
    ),
    pytest.param(
        b"GET /proxy/echo/items/1%00 HTTP/1.1\r\nHost: @HOST@\r\n" + AUTH + b"\r\n",
        id="path-pct-nul",
    ),
    pytest.param(
        b"GET /proxy/echo/items/1%0d%0aX-Injected:%20yes HTTP/1.1\r\nHost: @HOST@\r\n"
        + AUTH
        + b"\r\n",
        id="path-pct-crlf-header",
    ),
    pytest.param(
        b"GET /proxy/echo%0d%0a/items/1 HTTP/1.1\r\nHost: @HOST@\r\n" + AUTH + b"\r\n",
        id="path-pct-crlf-in-upstream-name",
    ),
    # CR, LF and NUL in header values: forwarded (Accept), dropped (X-Note), credential
    pytest.param(GET + AUTH + b"X-Note: a\rb\r\n\r\n", id="header-cr"),
    pytest.param(GET + AUTH + b"X-Note: a\nX-Injected: b\r\n\r\n", id="header-bare-lf"),
    pytest.param(GET + AUTH + b"X-Note: a\x00b\r\n\r\n", id="header-nul"),
    pytest.param(GET + AUTH + b"Accept: application/json\rX-Injected: yes\r\n\r\n", id="accept-cr"),
    pytest.param(GET + AUTH + b"Accept: application/json\x00\r\n\r\n", id="accept-nul"),
    pytest.param(GET + b"Authorization: Bearer @TOKEN@\x00\r\n\r\n", id="authorization-nul"),
    pytest.param(
        GET + b"Authorization: Bearer @TOKEN@\rX-Injected: yes\r\n\r\n", id="authorization-cr"
    ),
    # request smuggling
    pytest.param(
        POST
        + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
        % len(chunked(JSON_BODY) + SMUGGLED)
        + chunked(JSON_BODY)
        + SMUGGLED,
        id="cl-then-te",
    ),
    pytest.param(
        POST
        + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
        + chunked(JSON_BODY)
        + SMUGGLED,
        id="te-then-cl",
    ),
    pytest.param(
        POST
        + b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n"
        % (len(JSON_BODY), len(JSON_BODY) + len(SMUGGLED))
        + JSON_BODY
        + SMUGGLED,
        id="two-content-lengths",
    ),
    pytest.param(
        POST
        + b"Content-Length: %d, %d\r\n\r\n" % (len(JSON_BODY), len(JSON_BODY) + len(SMUGGLED))
        + JSON_BODY
        + SMUGGLED,
        id="content-length-list",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + JSON_BODY + b"\r\n0\r\n\r\n",
        id="chunk-size-not-hex",
    ),
    pytest.param(
        POST
        + b"Transfer-Encoding: chunked\r\n\r\n10000000000000000d\r\n"
        + JSON_BODY
        + b"\r\n0\r\n\r\n",
        id="chunk-size-overflow",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: chunked\r\n\r\n-d\r\n" + JSON_BODY + b"\r\n0\r\n\r\n",
        id="chunk-size-negative",
    ),
    pytest.param(GET + AUTH + b"X-Note: a\r\n folded\r\n\r\n", id="obs-fold"),
    pytest.param(GET + b"Authorization: Bearer\r\n @TOKEN@\r\n\r\n", id="obs-fold-authorization"),
    pytest.param(
        POST
        + b"Content-Length: %d\r\nTransfer-Encoding: identity\r\n\tchunked\r\n\r\n"
        % len(chunked(JSON_BODY) + SMUGGLED)
        + chunked(JSON_BODY)
        + SMUGGLED,
        id="obs-fold-transfer-encoding",
    ),
    pytest.param(
        GET + b"Authorization : Bearer @TOKEN@\r\n\r\n", id="space-before-colon-authorization"
    ),
    pytest.param(
        POST + b"Content-Length : %d\r\n\r\n" % len(JSON_BODY) + JSON_BODY,
        id="space-before-colon-content-length",
    ),
    pytest.param(
        POST
        + b"Transfer-Encoding : chunked\r\nContent-Length: %d\r\n\r\n" % len(chunked(JSON_BODY))
        + chunked(JSON_BODY),
        id="space-before-colon-transfer-encoding",
    ),
    # absolute-form request targets
    pytest.param(
        b"GET http://evil.example/proxy/echo/items/1 HTTP/1.1\r\nHost: @HOST@\r\n" + AUTH + b"\r\n",
        id="absolute-form-elsewhere",
    ),
    pytest.param(
        b"GET http://@HOST@/proxy/echo/items/1 HTTP/1.1\r\nHost: @HOST@\r\n" + AUTH + b"\r\n",
        id="absolute-form-own-host",
    ),
    # protocol versions
    pytest.param(b"GET /proxy/echo/items/1 HTTP/1.0\r\n" + AUTH + b"\r\n", id="http-1.0"),
    pytest.param(b"GET /proxy/echo/items/1\r\n", id="http-0.9"),
    # oversize
    pytest.param(GET + AUTH + b"X-Junk: " + b"a" * 65536 + b"\r\n\r\n", id="header-64k"),
    pytest.param(
        POST + b"Content-Length: %d\r\n\r\n" % len(BIG_BODY) + BIG_BODY,
        id="body-over-limit-content-length",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(BIG_BODY),
        id="body-over-limit-chunked",
    ),
    pytest.param(
        POST + b"Content-Length: 99999999999999999999999\r\n\r\n" + JSON_BODY,
        id="content-length-overflow",
    ),
]


@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_shape_is_refused_and_nothing_reaches_the_upstream(
    deployment: Deployment, port: int, template: bytes
) -> None:
    token = deployment.issue("echo-writer").token  # fresh: the grant's rate is per token
    request = fill(template, token=token, host=f"127.0.0.1:{port}")
    assert_refused_and_nothing_forwarded(deployment, port, [request])


@pytest.mark.parametrize(
    ("template", "status"),
    [
        pytest.param(GET + AUTH + b"\r\n", 200, id="get"),
        pytest.param(
            POST + b"Content-Length: %d\r\n\r\n" % len(JSON_BODY) + JSON_BODY, 201, id="post"
        ),
        pytest.param(
            POST + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(JSON_BODY),
            201,
            id="post-chunked",
        ),
    ],
)
def test_control_the_same_requests_without_the_hostile_part_are_forwarded(
    deployment: Deployment, port: int, template: bytes, status: int
) -> None:
    """Proves the table above would notice a hostile shape that got through."""
    token = deployment.issue("echo-writer").token
    before = len(deployment.upstream.received)
    answer = exchange(port, [fill(template, token=token, host=f"127.0.0.1:{port}")])
    assert answer.statuses == [status], answer.describe()
    assert len(deployment.upstream.received) == before + 1
    seen = deployment.upstream.received[-1]
    assert seen.header("Authorization") == f"Bearer {SECRET}"


@pytest.mark.parametrize(
    "host_headers",
    [
        pytest.param(b"Host: evil.example\r\n", id="elsewhere"),
        pytest.param(b"Host: 169.254.169.254\r\n", id="metadata"),
        pytest.param(b"Host: @HOST@\r\nHost: evil.example\r\n", id="two-hosts"),
        pytest.param(b"", id="no-host"),
        pytest.param(b"Host: @HOST@\r\nX-Forwarded-Host: evil.example\r\n", id="x-forwarded-host"),
    ],
)
def test_host_header_does_not_change_where_the_broker_forwards(
    deployment: Deployment, port: int, host_headers: bytes
) -> None:
    """Refused, or forwarded to the stand-in at its own configured address."""
    token = deployment.issue("echo-writer").token
    request = fill(
        b"GET /proxy/echo/items/1 HTTP/1.1\r\n" + host_headers + AUTH + b"\r\n",
        token=token,
        host=f"127.0.0.1:{port}",
    )
    before = len(deployment.upstream.received)
    answer = exchange(port, [request])
    time.sleep(0.1)
    forwarded = deployment.upstream.received[before:]
    assert not answer.hung, answer.describe()
    assert all(s < 500 for s in answer.statuses), answer.describe()
    assert len(forwarded) <= 1
    for seen in forwarded:
        assert seen.header("Host") == f"127.0.0.1:{deployment.upstream.port}"
        assert seen.path == "/items/1"
        assert all("evil.example" not in v for _, v in seen.headers)
    assert healthz(port) == 200


# ---------------------------------------------------------------------------------------
# slow requests


@pytest.mark.parametrize(
    "template",
    [
        pytest.param(GET + AUTH, id="headers-never-finish"),
        pytest.param(
            POST + b'Content-Length: 200\r\n\r\n{"amount": 1, "pad": "', id="body-never-finishes"
        ),
    ],
)
def test_a_stalled_request_is_eventually_closed(
    deployment: Deployment, port: int, template: bytes
) -> None:
    """Bytes dribbled over ~3 s, then silence: the broker must close (or answer 4xx)
    within SLOW_BOUND seconds instead of holding the connection open forever."""
    token = deployment.issue("echo-writer").token
    request = fill(template, token=token, host=f"127.0.0.1:{port}")
    step = -(-len(request) // 10)
    parts = [request[i : i + step] for i in range(0, len(request), step)]
    assert_refused_and_nothing_forwarded(
        deployment, port, parts, pause=3.0 / (len(parts) - 1), timeout=SLOW_BOUND, grace=0.5
    )


# ---------------------------------------------------------------------------------------
# bodies that are costly to read, on a grant with a spend ceiling


def _form(count: int) -> bytes:
    fields = "&".join(f"f{i}=v" for i in range(count))
    return f"{fields}&amount=-1".encode()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        pytest.param("application/json", b"[" * 100_000, id="json-100k-brackets"),
        pytest.param("application/json", b"[" * 100_000 + b"]" * 100_000, id="json-100k-balanced"),
        pytest.param(
            "application/json",
            b'{"amount": 1, "x": ' + b'{"a": ' * 40_000,
            id="json-nested-objects",
        ),
        pytest.param("application/json", b"[" + b"1," * 100_000 + b"1]", id="json-huge-flat-array"),
        pytest.param("application/x-www-form-urlencoded", _form(25_000), id="form-huge-flat"),
        pytest.param(
            "application/x-www-form-urlencoded", b"amount=1&" * 25_000, id="form-huge-repeated"
        ),
    ],
)
def test_costly_bodies_are_refused_as_amount_invalid(
    deployment: Deployment, port: int, content_type: str, body: bytes
) -> None:
    assert len(body) <= MAX_REQUEST_BYTES
    token = deployment.issue("echo-writer").token
    request = (
        f"POST /proxy/echo/items HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    answer = assert_refused_and_nothing_forwarded(deployment, port, [request])
    assert answer.statuses == [403], answer.describe()
    payload = json.loads(answer.raw.split(b"\r\n\r\n", 1)[1])
    assert payload["error"]["reason"] == "amount_invalid", payload


# ---------------------------------------------------------------------------------------
# credentials the agent sends never reach the upstream


AGENT_CREDENTIALS = {
    "Cookie": "session=agent-cookie",
    "apikey": "agent-apikey",
    "X-Api-Key": "agent-x-api-key",
    "Proxy-Authorization": "Basic YWdlbnQ6cHJveHk=",
    "Idempotency-Key": "agent-idempotency",
}


def _agent_values_absent(headers: Sequence[tuple[str, str]], values: Sequence[str]) -> None:
    for name, value in headers:
        for bad in values:
            assert bad not in value, f"{name} carried the agent's {bad!r} to the upstream"


def test_agent_credentials_from_broker_client_never_reach_the_upstream(
    deployment: Deployment, broker: LocalBroker
) -> None:
    issued = deployment.issue("echo-writer")
    with broker.client(issued.token) as client:
        response = client.post(
            "echo",
            "/items",
            json={"amount": 1},
            headers={**AGENT_CREDENTIALS, "Authorization": "Bearer agent-authorization"},
        )
    assert response.status_code == 201
    seen = deployment.upstream.received[-1]
    assert [v for k, v in seen.headers if k.lower() == "authorization"] == [f"Bearer {SECRET}"]
    for name in AGENT_CREDENTIALS:
        assert seen.header(name) is None, name
    _agent_values_absent(seen.headers, [*AGENT_CREDENTIALS.values(), "agent-authorization"])


def signed_request(token: str, port: int, target: str, extra: Sequence[tuple[str, str]]) -> bytes:
    """A raw GET signed like BrokerClient signs it, with ``extra`` headers the client
    itself would have stripped."""
    parsed = parse_token(token)
    authorization = sign_request(
        derive_signing_key(parsed.secret),
        token_id=parsed.token_id,
        method="GET",
        target=target,
        body=b"",
        headers=list(extra),
        timestamp=int(time.time()),
    )
    lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in extra]
    lines.append(f"Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@pytest.mark.parametrize(
    "extra",
    [
        *[pytest.param([(k, v)], id=k) for k, v in AGENT_CREDENTIALS.items()],
        pytest.param(list(AGENT_CREDENTIALS.items()), id="all-at-once"),
        pytest.param(
            [("authorization", "Bearer agent-second-authorization")], id="second-authorization"
        ),
        pytest.param([("X-Authorization", "Bearer agent-x-authorization")], id="x-authorization"),
        pytest.param([("X-Auth-Token", "agent-x-auth-token")], id="x-auth-token"),
        pytest.param([("Authentication", "Bearer agent-authentication")], id="authentication"),
        pytest.param(
            [("X-Forwarded-Authorization", "Bearer agent-xfa")], id="x-forwarded-authorization"
        ),
        pytest.param([("Stripe-Account", "acct_agent")], id="stripe-account"),
        pytest.param([("X-Idempotency-Key", "agent-x-idempotency")], id="x-idempotency-key"),
    ],
)
def test_agent_credentials_on_a_signed_request_never_reach_the_upstream(
    deployment: Deployment, port: int, extra: list[tuple[str, str]]
) -> None:
    """Sent raw, so the headers reach the broker (BrokerClient strips some itself)."""
    token = deployment.issue("reader").token
    before = len(deployment.upstream.received)
    answer = exchange(port, [signed_request(token, port, "/proxy/echo/items/1", extra)])
    assert not answer.hung and answer.statuses, answer.describe()
    assert all(s < 500 for s in answer.statuses), answer.describe()
    forwarded = deployment.upstream.received[before:]
    if answer.statuses[0] != 200:  # refused outright is fine, if nothing left
        assert 400 <= answer.statuses[0] < 500 and not forwarded, answer.describe()
        return
    assert len(forwarded) == 1
    seen = forwarded[0]
    assert [v for k, v in seen.headers if k.lower() == "authorization"] == [f"Bearer {SECRET}"]
    _agent_values_absent(seen.headers, [v for _, v in extra])
    assert token not in json.dumps(seen.headers)


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Bearer {t}", id="bearer"),
        pytest.param("bearer {t}", id="lower-bearer"),
        pytest.param("BEARER {t}", id="upper-bearer"),
        pytest.param("token {t}", id="github-token"),
        pytest.param("Bearer  {t}", id="two-spaces"),
        pytest.param("Bearer {t} ", id="trailing-space"),
    ],
)
def test_the_bearer_token_itself_never_reaches_the_upstream(
    deployment: Deployment, port: int, authorization: str
) -> None:
    token = deployment.issue("echo-writer").token
    before = len(deployment.upstream.received)
    request = (
        f"GET /proxy/echo/items/1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: {authorization.format(t=token)}\r\napikey: {token}\r\n"
        f"Cookie: t={token}\r\n\r\n"
    ).encode()
    answer = exchange(port, [request])
    assert not answer.hung and answer.statuses, answer.describe()
    assert all(s < 500 for s in answer.statuses), answer.describe()
    parsed = parse_token(token)
    for seen in deployment.upstream.received[before:]:
        text = json.dumps(seen.headers) + seen.path + seen.query
        assert parsed.token_id not in text
        assert token.rsplit(".", 1)[1] not in text
        assert seen.header("Authorization") == f"Bearer {SECRET}"


# ---------------------------------------------------------------------------------------
# an upstream that echoes the secret back


def _masked(key: str) -> str:
    return key[:8] + "*" * 12 + key[-4:]


class LeakyUpstream(EchoServer):
    """The echo stand-in, with ``GET /items/{shape}`` answering the received key back
    in the named shape (recorded like every other request)."""

    async def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/items/{shape}", self._leak_shape)
        return app

    async def _leak_shape(self, request: web.Request) -> web.Response:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        b64 = base64.b64encode(key.encode()).decode()
        pct = "".join(f"%{b:02X}" for b in key.encode())
        shape = request.match_info["shape"]
        if shape == "error-500-json":
            return web.json_response({"error": {"message": f"internal: bad key {key}"}}, status=500)
        if shape == "error-500-text":
            return web.Response(status=500, text=f"Traceback ...\nKeyError: {key!r}\n")
        if shape == "error-500-masked":
            return web.json_response({"error": f"Invalid API key: {_masked(key)}"}, status=500)
        if shape == "error-502-html":
            return web.Response(
                status=502, content_type="text/html", text=f"<pre>upstream said {key}</pre>"
            )
        if shape == "header":
            return web.json_response({"ok": True}, headers={"X-Echo-Key": key})
        if shape == "header-base64":
            return web.json_response({"ok": True}, headers={"X-Echo-Basic": f"Basic {b64}"})
        if shape == "header-name":
            return web.json_response({"ok": True}, headers={key: "1"})
        if shape == "location":
            return web.Response(status=302, headers={"Location": f"https://cb.example/?key={key}"})
        if shape == "location-percent":
            return web.Response(status=302, headers={"Location": f"https://cb.example/?key={pct}"})
        if shape == "location-userinfo":
            return web.Response(status=307, headers={"Location": f"https://user:{key}@cb.example/"})
        if shape == "www-authenticate":
            return web.Response(
                status=401,
                headers={
                    "WWW-Authenticate": (
                        f'Bearer realm="api", error="invalid_token", error_description="bad {key}"'
                    )
                },
            )
        if shape == "www-authenticate-masked":
            return web.Response(
                status=401,
                headers={"WWW-Authenticate": f'Bearer error_description="{_masked(key)}"'},
            )
        if shape == "set-cookie":
            return web.json_response({"ok": True}, headers={"Set-Cookie": f"k={key}"})
        return web.json_response({"error": "unknown shape"}, status=404)


LEAK_SHAPES = {  # shape -> the status the upstream answers with, relayed as it is
    "error-500-json": 500,
    "error-500-text": 500,
    "error-500-masked": 500,
    "error-502-html": 502,
    "header": 200,
    "header-base64": 200,
    "header-name": 200,
    "location": 302,
    "location-percent": 302,
    "location-userinfo": 307,
    "www-authenticate": 401,
    "www-authenticate-masked": 401,
    "set-cookie": 200,
}


@pytest.fixture(scope="module")
def leaky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, int]]:
    with LeakyUpstream(SECRET) as server:
        dep = make_deployment(tmp_path_factory.mktemp("leaky"), server)
        with dep.broker() as running:
            assert running.url is not None
            yield dep, int(running.url.rsplit(":", 1)[1])


def _secret_forms() -> list[bytes]:
    forms = [
        SECRET,
        SECRET[-4:],  # the tail of every masked form
        SECRET[8:-4],  # the middle, seen only in a full copy
        base64.b64encode(SECRET.encode()).decode(),
        urllib.parse.quote(SECRET, safe=""),
        "".join(f"%{b:02X}" for b in SECRET.encode()),
    ]
    return [f.encode() for f in forms]


@pytest.mark.parametrize(("shape", "status"), LEAK_SHAPES.items())
def test_a_secret_echoed_by_the_upstream_never_reaches_the_agent(
    leaky: tuple[Deployment, int], shape: str, status: int
) -> None:
    dep, leaky_port = leaky
    token = dep.issue("reader").token
    before = len(dep.upstream.received)
    answer = exchange(
        leaky_port, [signed_request(token, leaky_port, f"/proxy/echo/items/{shape}", [])]
    )
    assert answer.statuses == [status], answer.describe()  # relayed, scrubbed, not withheld
    assert b"vertex-decision: allow" in answer.raw
    assert len(dep.upstream.received) == before + 1  # it really went out and came back
    assert dep.upstream.received[-1].header("Authorization") == f"Bearer {SECRET}"
    for form in _secret_forms():
        assert form not in answer.raw, f"{form!r} reached the agent: {answer.describe()}"
    assert healthz(leaky_port) == 200
