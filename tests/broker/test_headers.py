"""Tests for vertex_tools.broker.headers: an allowlist for what the agent sends, a
denylist for what the upstream answers, and refusal of malformed headers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vertex_tools.broker.headers import (
    REQUEST_HEADER_ALLOWLIST,
    clean_response_headers,
    forwardable_request_headers,
)
from vertex_tools.errors import ConfigError, RequestRejected

# --- requests: what is forwarded -----------------------------------------------------

FORWARDED = [
    # (name, value, forwarded as)
    (b"Accept", b"application/json", ("accept", "application/json")),
    (b"accept-language", b"en-GB, fr;q=0.5", ("accept-language", "en-GB, fr;q=0.5")),
    (
        b"Content-Type",
        b"application/x-www-form-urlencoded",
        ("content-type", "application/x-www-form-urlencoded"),
    ),
    (
        b"User-Agent",
        b"Stripe/v1 PythonBindings/16.0.0",
        ("user-agent", "Stripe/v1 PythonBindings/16.0.0"),
    ),
    (b"If-Match", b'"abc"', ("if-match", '"abc"')),
    (b"If-None-Match", b'W/"etag"', ("if-none-match", 'W/"etag"')),
    (
        b"If-Modified-Since",
        b"Wed, 21 Oct 2015 07:28:00 GMT",
        ("if-modified-since", "Wed, 21 Oct 2015 07:28:00 GMT"),
    ),
    (b"Prefer", b"return=representation", ("prefer", "return=representation")),
    (b"Stripe-Version", b"2024-06-20", ("stripe-version", "2024-06-20")),
    (b"X-GitHub-Api-Version", b"2022-11-28", ("x-github-api-version", "2022-11-28")),
    (b"Accept-Profile", b"public", ("accept-profile", "public")),
    (b"Content-Profile", b"public", ("content-profile", "public")),
    # values: surrounding whitespace stripped, tab inside kept, latin-1 decoded
    (b"Accept", b"  text/plain \t", ("accept", "text/plain")),
    (b"User-Agent", b"a\tb", ("user-agent", "a\tb")),
    (b"User-Agent", b"caf\xe9", ("user-agent", "caf\u00e9")),
    (b"Accept", b"", ("accept", "")),
]


@pytest.mark.parametrize(("name", "value", "expected"), FORWARDED)
def test_forwarded(name: bytes, value: bytes, expected: tuple[str, str]) -> None:
    assert forwardable_request_headers([(name, value)]) == [expected]


def test_allowlist_is_lower_case_and_covered() -> None:
    assert all(name == name.lower() for name in REQUEST_HEADER_ALLOWLIST)
    assert {expected[0] for _, _, expected in FORWARDED} == REQUEST_HEADER_ALLOWLIST
    assert "stripe-account" not in REQUEST_HEADER_ALLOWLIST


DROPPED = [
    # slices of a response could smuggle a secret past the scrubber piece by piece
    b"Range",
    b"If-Range",
    # the broker's own namespace
    b"Vertex-Decision",
    # credentials: the broker injects its own
    b"Authorization",
    b"authorization",
    b"AUTHORIZATION",
    b"Proxy-Authorization",
    b"Cookie",
    b"apikey",
    b"X-Api-Key",
    b"Idempotency-Key",
    # routing and framing
    b"Host",
    b"Content-Length",
    b"Transfer-Encoding",
    b"Connection",
    b"Keep-Alive",
    b"TE",
    b"Upgrade",
    b"Expect",
    b"Forwarded",
    b"X-Forwarded-For",
    b"X-Forwarded-Host",
    b"X-Forwarded-Proto",
    b"X-Real-IP",
    b"X-HTTP-Method-Override",
    b"X-Original-URL",
    b"X-Rewrite-URL",
    # the broker's own namespace
    b"X-Vertex-Token",
    b"X-Vertex-Signature",
    # control arguments are decided by policy, not by a header
    b"Stripe-Account",
    b"Stripe-Context",
    # everything else
    b"Accept-Encoding",
    b"Origin",
    b"Referer",
    b"X-Unknown",
    b"X-Request-Id",
]


@pytest.mark.parametrize("name", DROPPED)
def test_dropped(name: bytes) -> None:
    assert forwardable_request_headers([(name, b"value"), (b"accept", b"*/*")]) == [
        ("accept", "*/*")
    ]


def test_repeated_multi_valued_headers_are_kept_in_order() -> None:
    headers = [(b"Accept", b"text/html"), (b"authorization", b"Bearer x"), (b"accept", b"*/*")]
    assert forwardable_request_headers(headers) == [("accept", "text/html"), ("accept", "*/*")]


REJECTED = [
    # (headers, words the message must contain)
    # names that are not RFC 9110 tokens
    ([(b"Content Type", b"x")], "not a valid token"),
    ([(b"x:y", b"x")], "not a valid token"),
    ([(b"", b"x")], "not a valid token"),
    ([(b"x\r\ny", b"x")], "not a valid token"),
    ([(b"accept\n", b"x")], "not a valid token"),
    ([(b"caf\xe9", b"x")], "not a valid token"),
    ([(b"x(y)", b"x")], "not a valid token"),
    ([(b"x@y", b"x")], "not a valid token"),
    ([(b"x[y]", b"x")], "not a valid token"),
    ([(b"x/y", b"x")], "not a valid token"),
    ([(b"x\x00", b"x")], "not a valid token"),
    ([(b"\taccept", b"x")], "not a valid token"),
    # values with control characters: header injection, truncation
    ([(b"Accept", b"application/json\r\nX-Injected: 1")], "control character"),
    ([(b"Accept", b"a\nb")], "control character"),
    ([(b"Accept", b"a\rb")], "control character"),
    ([(b"Accept", b"a\x00b")], "control character"),
    ([(b"Accept", b"a\x1bb")], "control character"),
    ([(b"Accept", b"a\x7fb")], "control character"),
    ([(b"Accept", b"a\x0bb")], "control character"),
    # also for headers that would be dropped: a malformed request is refused whole
    ([(b"Authorization", b"Bearer x\r\nHost: evil.example")], "control character"),
    ([(b"X-Unknown", b"\x00")], "control character"),
    # single-valued headers appear once
    (
        [(b"Content-Type", b"a/b"), (b"content-type", b"c/d")],
        "'content-type' appears more than once",
    ),
    ([(b"Content-Type", b"a/b"), (b"Content-Type", b"a/b")], "more than once"),
    ([(b"Stripe-Version", b"1"), (b"stripe-version", b"2")], "more than once"),
    ([(b"Range", b"0-1"), (b"Range", b"2-3")], "more than once"),
    ([(b"Accept-Profile", b"public"), (b"Accept-Profile", b"private")], "more than once"),
]


@pytest.mark.parametrize(("headers", "message"), REJECTED)
def test_rejected(headers: list[tuple[bytes, bytes]], message: str) -> None:
    with pytest.raises(RequestRejected) as info:
        forwardable_request_headers(headers)
    assert message in str(info.value)


def test_rejection_never_repeats_a_value() -> None:
    with pytest.raises(RequestRejected) as info:
        forwardable_request_headers([(b"Authorization", b"Bearer hunter2\r\n")])
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("extra", "name", "forwarded"),
    [
        (frozenset({"x-request-id"}), b"X-Request-Id", ("x-request-id", "v")),
        (frozenset({"X-Request-Id"}), b"x-request-id", ("x-request-id", "v")),
        (frozenset({"idempotency-key"}), b"Idempotency-Key", ("idempotency-key", "v")),
    ],
)
def test_extra_allowed(extra: frozenset[str], name: bytes, forwarded: tuple[str, str]) -> None:
    assert forwardable_request_headers([(name, b"v")], extra_allowed=extra) == [forwarded]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("authorization", "can never be forwarded"),
        ("Cookie", "can never be forwarded"),
        ("apikey", "can never be forwarded"),
        ("x-api-key", "can never be forwarded"),
        ("host", "can never be forwarded"),
        ("content-length", "can never be forwarded"),
        ("transfer-encoding", "can never be forwarded"),
        ("x-forwarded-for", "can never be forwarded"),
        ("X-Vertex-Token", "can never be forwarded"),
        ("proxy-anything", "can never be forwarded"),
        ("bad name", "not a valid header name"),
        ("", "not a valid header name"),
        ("x\r\ny", "not a valid header name"),
    ],
)
def test_extra_allowed_refuses_dangerous_names(extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        forwardable_request_headers([], extra_allowed=frozenset({extra}))
    assert message in str(info.value)


_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _check_forwarded(result: list[tuple[str, str]]) -> None:
    for name, value in result:
        assert name in REQUEST_HEADER_ALLOWLIST
        assert not _CTL.search(value)
        assert value == value.strip(" \t")


@given(st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=40)), max_size=8))
def test_property_arbitrary_headers(headers: list[tuple[bytes, bytes]]) -> None:
    try:
        result = forwardable_request_headers(headers)
    except RequestRejected:
        return  # any other exception, ours or not, fails the test
    _check_forwarded(result)


_NAMES = st.one_of(
    st.sampled_from(sorted(REQUEST_HEADER_ALLOWLIST)).map(str.encode),
    st.sampled_from(DROPPED),
    st.from_regex(rb"[A-Za-z0-9!#$%&'*+.^_`|~\-]{1,12}", fullmatch=True),
    st.binary(max_size=6),
).map(lambda n: n.swapcase() if n.isascii() and len(n) % 2 else n)
_VALUES = st.one_of(
    st.from_regex(rb"[ \t!-~\x80-\xff]{0,30}", fullmatch=True),
    st.binary(max_size=30),
)


@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=10))
def test_property_header_like_input(headers: list[tuple[bytes, bytes]]) -> None:
    try:
        result = forwardable_request_headers(headers)
    except RequestRejected:
        return
    _check_forwarded(result)
    expected = [n.decode("ascii").lower() for n, _ in headers]
    assert [n for n, _ in result] == [n for n in expected if n in REQUEST_HEADER_ALLOWLIST]


# --- responses: what comes back -----------------------------------------------------


def test_clean_response_headers() -> None:
    upstream = [
        ("Content-Type", "application/json"),
        ("Content-Length", "1234"),
        ("Content-Encoding", "gzip"),
        ("Transfer-Encoding", "chunked"),
        ("Connection", "keep-alive, X-Hop-Secret"),
        ("X-Hop-Secret", "named by connection"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Trailer", "Expires"),
        ("Upgrade", "h2c"),
        ("Proxy-Authenticate", "Basic"),
        ("Proxy-Connection", "keep-alive"),
        ("Set-Cookie", "session=abc; HttpOnly"),
        ("set-cookie", "__stripe_mid=1"),
        ("Alt-Svc", 'h3=":443"'),
        ("X-Vertex-Decision", "allow"),
        ("Location", "https://api.example.com/v1/next"),
        ("WWW-Authenticate", 'Bearer realm="api"'),
        ("Request-Id", "req_123"),
        ("Stripe-Should-Retry", "false"),
        ("X-RateLimit-Remaining", "4999"),
        ("ETag", 'W/"abc"'),
        ("Link", '<https://api.github.com/x?page=2>; rel="next"'),
        ("Retry-After", "3"),
        ("Cache-Control", "no-store"),
    ]
    assert clean_response_headers(upstream) == [
        ("content-type", "application/json"),
        ("location", "https://api.example.com/v1/next"),
        ("www-authenticate", 'Bearer realm="api"'),
        ("request-id", "req_123"),
        ("stripe-should-retry", "false"),
        ("x-ratelimit-remaining", "4999"),
        ("etag", 'W/"abc"'),
        ("link", '<https://api.github.com/x?page=2>; rel="next"'),
        ("retry-after", "3"),
        ("cache-control", "no-store"),
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Injected", "a\r\nSet-Cookie: x=1"),
        ("X-Nul", "a\x00b"),
        ("Bad Name", "x"),
        ("", "x"),
        ("Set-Coo\u212aie", "session=1"),  # Kelvin sign: lower() would make it set-cookie
        ("X-Caf\u00e9", "x"),
    ],
)
def test_malformed_response_headers_are_dropped(name: str, value: str) -> None:
    assert clean_response_headers([(name, value), ("ETag", "1")]) == [("etag", "1")]


@given(st.lists(st.tuples(st.text(max_size=15), st.text(max_size=30)), max_size=8))
def test_property_clean_response_headers(headers: list[tuple[str, str]]) -> None:
    for name, value in clean_response_headers(headers):
        assert re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9a-z]+", name)
        assert name not in {"set-cookie", "content-length", "transfer-encoding", "connection"}
        assert not name.startswith(("proxy-", "x-vertex-"))
        assert not _CTL.search(value)
