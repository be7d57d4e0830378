"""Tests for vertex_tools.broker.netguard: strict upstream URLs, the address policy,
checked resolution, and a pinned resolver driven through a real aiohttp client and
server on 127.0.0.1. No test touches the network beyond loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from vertex_tools.broker.netguard import (
    AddressPolicy,
    PinnedResolver,
    UpstreamURL,
    parse_upstream_url,
    resolve_checked,
)
from vertex_tools.errors import ConfigError, UpstreamBlocked, UpstreamError, UpstreamTimeout

# --- parse_upstream_url -----------------------------------------------------------

PARSE_OK = [
    ("https://api.stripe.com", UpstreamURL("https", "api.stripe.com", 443, "")),
    ("https://api.stripe.com/", UpstreamURL("https", "api.stripe.com", 443, "")),
    ("https://api.stripe.com/v1/", UpstreamURL("https", "api.stripe.com", 443, "/v1")),
    ("https://api.stripe.com/v1///", UpstreamURL("https", "api.stripe.com", 443, "/v1")),
    ("HTTPS://API.GitHub.COM", UpstreamURL("https", "api.github.com", 443, "")),
    ("http://Example.COM/Mixed/Case", UpstreamURL("http", "example.com", 80, "/Mixed/Case")),
    ("http://localhost:8080/rest/v1", UpstreamURL("http", "localhost", 8080, "/rest/v1")),
    ("https://api.stripe.com./v1", UpstreamURL("https", "api.stripe.com", 443, "/v1")),
    ("https://api.stripe.com.:8443", UpstreamURL("https", "api.stripe.com", 8443, "")),
    ("http://[::1]:8000/x", UpstreamURL("http", "::1", 8000, "/x")),
    ("http://[2001:DB8::1]", UpstreamURL("http", "2001:db8::1", 80, "")),
    ("http://[::ffff:127.0.0.1]", UpstreamURL("http", "::ffff:7f00:1", 80, "")),
    ("http://127.0.0.1:12111", UpstreamURL("http", "127.0.0.1", 12111, "")),
    ("http://0.0.0.0", UpstreamURL("http", "0.0.0.0", 80, "")),  # noqa: S104 - parsed, not bound
    ("https://my_host.internal", UpstreamURL("https", "my_host.internal", 443, "")),
    ("https://xn--bcher-kva.example/", UpstreamURL("https", "xn--bcher-kva.example", 443, "")),
    ("https://a.example/a%20b/c", UpstreamURL("https", "a.example", 443, "/a%20b/c")),
    ("https://a.example/@x/:y", UpstreamURL("https", "a.example", 443, "/@x/:y")),
    ("http://h:1", UpstreamURL("http", "h", 1, "")),
    ("http://h:65535", UpstreamURL("http", "h", 65535, "")),
    ("http://1e100.net", UpstreamURL("http", "1e100.net", 80, "")),
    ("http://0x.example", UpstreamURL("http", "0x.example", 80, "")),
]


@pytest.mark.parametrize(("url", "expected"), PARSE_OK)
def test_parse_accepts(url: str, expected: UpstreamURL) -> None:
    assert parse_upstream_url(url) == expected


PARSE_BAD = [
    # (url, words the message must contain)
    ("", "empty"),
    ("ftp://example.com", "scheme 'ftp' is not allowed"),
    ("file:///etc/passwd", "scheme 'file' is not allowed"),
    ("javascript:alert(1)", "scheme 'javascript' is not allowed"),
    ("gopher://127.0.0.1:6379/_INFO", "scheme 'gopher' is not allowed"),
    ("//example.com", "no scheme"),
    ("example.com", "no scheme"),
    ("https:example.com", "'//'"),
    ("https:/example.com", "'//'"),
    # userinfo: two parsers disagree on which host this is
    ("https://user:hunter2@api.stripe.com", "user info"),
    ("https://api.stripe.com@evil.example", "user info"),
    ("https://api.stripe.com:443@evil.example", "user info"),
    ("https://@api.stripe.com", "user info"),
    # backslashes: WHATWG reads them as "/"
    ("https://evil.example\\@api.stripe.com", "backslash"),
    ("https://api.stripe.com\\.evil.example", "backslash"),
    ("https:\\\\api.stripe.com", "backslash"),
    # whitespace and control characters
    ("https://api.stripe.com /v1", "whitespace"),
    (" https://api.stripe.com", "whitespace"),
    ("https://api.stripe.com\t", "whitespace"),
    ("https://api.stripe.com\n.evil.example", "whitespace"),
    ("https://api.stripe.com\u00a0", "whitespace"),
    ("https://api.stripe.com\x00.evil.example", "control character"),
    ("https://api.stripe.com\x7f", "control character"),
    ("https://api.stripe.com\x85", "whitespace"),
    ("https://api.stripe.com\x9b", "control character"),
    # non-ASCII look-alikes
    ("https://api.stripe.com\u3002evil.example", "non-ASCII"),
    ("https://\uff45xample.com", "non-ASCII"),
    ("https://api.stripe.com/caf\u00e9", "non-ASCII"),
    # query and fragment belong to the request, not the base URL
    ("https://api.stripe.com/v1?x=1", "query"),
    ("https://api.stripe.com/v1?", "query"),
    ("https://api.stripe.com?api_key=sk_test_x", "query"),
    ("https://api.stripe.com/#frag", "fragment"),
    # hosts
    ("https://", "empty host"),
    ("https://:443", "empty host"),
    ("https://./", "empty host"),
    ("https://a..b", "invalid label"),
    ("https://.a.b", "invalid label"),
    ("https://a.b..", "invalid label"),
    ("https://-bad.example", "invalid label"),
    ("https://bad-.example", "invalid label"),
    ("https://a!b.example", "invalid label"),
    ("https://" + "a" * 64 + ".example", "invalid label"),
    ("https://" + ".".join(["a" * 60] * 5), "longer than 253"),
    ("https://%61pi.stripe.com", "percent-encoded"),
    ("https://api.stripe.com%2f.evil.example", "percent-encoded"),
    # IPv4 in non-canonical numeric forms
    ("http://0177.0.0.1", "non-canonical"),
    ("http://0x7f.0.0.1", "non-canonical"),
    ("http://0X7F.0.0.1", "non-canonical"),
    ("http://0x7f.1", "non-canonical"),
    ("http://0x7f000001", "non-canonical"),
    ("http://2130706433", "non-canonical"),
    ("http://017700000001", "non-canonical"),
    ("http://127.1", "non-canonical"),
    ("http://127.0.1", "non-canonical"),
    ("http://127.0.0.01", "non-canonical"),
    ("http://127.0.0.1.", "127.0.0.1"),  # ok: see the next test; here as a sanity pair
    ("http://1.2.3.4.5", "non-canonical"),
    ("http://256.1.1.1", "non-canonical"),
    ("http://example.123", "non-canonical"),
    ("http://0x", "non-canonical"),
    ("http://0", "non-canonical"),
    ("http://169.254.43518", "non-canonical"),
    # IPv6 hosts
    ("http://[::1", "unclosed"),
    ("http://[::1]x", "after the ']'"),
    ("http://[::1]:", "no port"),
    ("http://[fe80::1%25eth0]", "zone id"),
    ("http://[127.0.0.1]", "not an IPv6 address"),
    ("http://[v1.fe]", "not an IPv6 address"),
    ("http://::1/", "brackets"),
    ("http://2001:db8::1:80/", "brackets"),
    # ports
    ("http://h:0", "out of range"),
    ("http://h:65536", "out of range"),
    ("http://h:99999", "out of range"),
    ("http://h:", "no port"),
    ("http://h:8o", "not a number"),
    ("http://h:+80", "not a number"),
    ("http://h:-1", "not a number"),
    ("http://h:123456", "not a number"),
    # paths
    ("https://a.example/../admin", "'..'"),
    ("https://a.example/v1/./x", "'.'"),
    ("https://a.example/v1/%2e%2e/admin", "'..'"),
    ("https://a.example/v1/%2E./admin", "'..'"),
    ("https://a.example//v1", "empty segment"),
    ("https://a.example/v1//x", "empty segment"),
    ("https://a.example/v1/<x>", "percent-encoded"),
    ('https://a.example/v1/"x"', "percent-encoded"),
    ("https://a.example/%zz", "two hex digits"),
    ("https://a.example/%2", "two hex digits"),
    ("https://a.example/" + "x" * 3000, "longer than"),
]


@pytest.mark.parametrize(("url", "message"), [r for r in PARSE_BAD if r[0] != "http://127.0.0.1."])
def test_parse_refuses(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_upstream_url(url)
    assert message in str(info.value)


def test_parse_trailing_dot_on_ipv4_is_removed() -> None:
    assert parse_upstream_url("http://127.0.0.1./") == UpstreamURL("http", "127.0.0.1", 80, "")


@pytest.mark.parametrize(
    "url",
    [
        "https://user:hunter2@api.stripe.com",
        "https://api.stripe.com/v1?key=hunter2",
        "https://api.stripe.com/#hunter2",
        "https://hunter2@x",
    ],
)
def test_parse_error_never_repeats_a_credential(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_upstream_url(url)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://api.stripe.com/v1", "https://api.stripe.com:443"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("http://127.0.0.1:9", "http://127.0.0.1:9"),
    ],
)
def test_origin(url: str, origin: str) -> None:
    assert parse_upstream_url(url).origin == origin


def test_upstream_url_is_frozen() -> None:
    parsed = parse_upstream_url("https://api.stripe.com")
    with pytest.raises(AttributeError):
        parsed.host = "evil.example"  # type: ignore[misc]


def _check_parsed(parsed: UpstreamURL) -> None:
    assert parsed.scheme in {"http", "https"}
    assert parsed.host
    assert parsed.host == parsed.host.lower()
    assert not parsed.host.endswith(".")
    assert "[" not in parsed.host
    assert "@" not in parsed.host
    assert 1 <= parsed.port <= 65535
    assert parsed.base_path == "" or parsed.base_path.startswith("/")
    assert not parsed.base_path.endswith("/")
    # what we return must parse again to itself
    assert parse_upstream_url(parsed.origin + parsed.base_path) == parsed


@given(st.text(max_size=80))
def test_parse_arbitrary_text_is_refused_or_valid(url: str) -> None:
    try:
        parsed = parse_upstream_url(url)
    except ConfigError:
        return  # any other exception, ours or not, fails the test
    _check_parsed(parsed)


_URL_PARTS = st.builds(
    lambda scheme, auth, host, port, path: f"{scheme}://{auth}{host}{port}{path}",
    st.sampled_from(["http", "https", "HTTP", "ftp", "", "h\u0074tp"]),
    st.sampled_from(["", "", "", "u@", "u:p@", "@"]),
    st.one_of(
        st.from_regex(r"[a-zA-Z0-9._\-%\\\[\]:]{0,20}", fullmatch=True),
        st.ip_addresses().map(str),
        st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
        st.integers(0, 2**32).map(str),
    ),
    st.one_of(st.just(""), st.integers(-5, 70000).map(lambda p: f":{p}")),
    st.from_regex(r"(/[a-zA-Z0-9._~%@:?#\\ \-]{0,6}){0,3}", fullmatch=True),
)


@given(_URL_PARTS)
def test_parse_structured_urls_are_refused_or_valid(url: str) -> None:
    try:
        parsed = parse_upstream_url(url)
    except ConfigError:
        return  # any other exception, ours or not, fails the test
    _check_parsed(parsed)


# --- AddressPolicy -------------------------------------------------------------------

BLOCKED = [
    # (address, words the reason must contain)
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.255", "carrier-grade NAT"),
    ("169.254.169.254", "metadata"),
    ("169.254.1.1", "link-local"),
    ("0.0.0.0", "0.0.0.0/8"),  # noqa: S104 - checked, not bound
    ("0.1.2.3", "0.0.0.0/8"),
    ("255.255.255.255", "broadcast"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("192.0.0.8", "IETF protocol"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.1", "documentation"),
    ("203.0.113.1", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("fd00:ec2::254", "metadata"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("100::1", "discard"),
    # IPv4 carried inside IPv6
    ("::ffff:127.0.0.1", "127.0.0.1, which is loopback"),
    ("::ffff:7f00:1", "127.0.0.1, which is loopback"),
    ("::ffff:169.254.169.254", "metadata"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:100.64.0.1", "carrier-grade NAT"),
    ("::127.0.0.1", "reserved"),
    ("64:ff9b::7f00:1", "127.0.0.1, which is loopback"),
    ("64:ff9b::a9fe:a9fe", "metadata"),
    ("64:ff9b::a00:1", "10.0.0.1"),
    ("64:ff9b:1::1", "local-use NAT64"),
    ("2002:7f00:1::1", "127.0.0.1, which is loopback"),
    ("2002:a9fe:a9fe::1", "metadata"),
    ("2002:a00:1::", "10.0.0.1"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "IETF protocol"),  # Teredo
    # not addresses at all
    ("not-an-ip", "not an IP address"),
    ("", "not an IP address"),
    ("127.1", "not an IP address"),
    ("0177.0.0.1", "not an IP address"),
    ("2130706433", "not an IP address"),
    ("[::1]", "not an IP address"),
    ("127.0.0.1 ", "not an IP address"),
]


@pytest.mark.parametrize(("address", "reason"), BLOCKED)
def test_blocked_by_default(address: str, reason: str) -> None:
    with pytest.raises(UpstreamBlocked) as info:
        AddressPolicy().check(address)
    message = str(info.value)
    assert reason in message
    if reason != "not an IP address":
        assert "settings.allow_private_upstreams" in message


ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "140.82.112.3",  # api.github.com
    "54.187.174.169",  # api.stripe.com
    "100.63.255.255",  # just below 100.64.0.0/10
    "100.128.0.0",  # just above it
    "169.253.255.255",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",  # judged as the IPv4 it stands for
    "64:ff9b::808:808",  # DNS64 answer for 8.8.8.8
    "2002:808:808::1",  # 6to4 of a public IPv4
]


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_allowed(address: str) -> None:
    AddressPolicy().check(address)


ALLOW_PRIVATE = [
    # (allow_private, address, allowed?)
    (["127.0.0.1"], "127.0.0.1", True),
    (["127.0.0.1"], "127.0.0.2", False),
    (["127.0.0.1"], "::1", False),
    (["127.0.0.1"], "::ffff:127.0.0.1", True),
    (["127.0.0.1"], "64:ff9b::7f00:1", True),
    (["10.0.0.0/8"], "10.9.9.9", True),
    (["10.0.0.0/8"], "11.0.0.1", True),  # public anyway
    (["10.0.0.0/8"], "172.16.0.1", False),
    (["10.0.0.0/8"], "2002:a09:909::1", True),
    (["10.0.0.0/8", "::1"], "::1", True),
    (["fd00::/8"], "fd00::5", True),
    (["100.64.0.0/10"], "100.100.100.100", True),
    # the metadata endpoint needs its own entry; a network does not open it
    (["169.254.0.0/16"], "169.254.1.1", True),
    (["169.254.0.0/16"], "169.254.169.254", False),
    (["169.254.0.0/16"], "::ffff:169.254.169.254", False),
    (["fd00::/8"], "fd00:ec2::254", False),
    (["169.254.169.254"], "169.254.169.254", True),
    (["fd00:ec2::254/128"], "fd00:ec2::254", True),
    ([" 10.0.0.1 "], "10.0.0.1", True),
    ((), "10.0.0.1", False),
]


@pytest.mark.parametrize(("allow", "address", "allowed"), ALLOW_PRIVATE)
def test_allow_private(allow: Sequence[str], address: str, allowed: bool) -> None:
    policy = AddressPolicy(allow)
    if allowed:
        policy.check(address)
    else:
        with pytest.raises(UpstreamBlocked):
            policy.check(address)


@pytest.mark.parametrize(
    ("allow", "message"),
    [
        (["10.0.0.0/33"], "not an IP address or CIDR"),
        (["10.0.0.1/8"], "has host bits set"),
        (["localhost"], "not an IP address or CIDR"),
        ([""], "not an IP address or CIDR"),
        (["0177.0.0.1"], "not an IP address or CIDR"),
        (["[::1]"], "not an IP address or CIDR"),
        (["0.0.0.0/0"], "turns the SSRF guard off"),
        (["::/0"], "turns the SSRF guard off"),
        ("10.0.0.0/8", "not a string"),
        ([10], "is not a string"),
    ],
)
def test_allow_private_malformed(allow: Sequence[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        AddressPolicy(allow)
    assert message in str(info.value)


@given(st.ip_addresses(v=4))
def test_mapped_and_nat64_forms_judged_like_the_ipv4(ip: ipaddress.IPv4Address) -> None:
    policy = AddressPolicy(["10.0.0.0/8"])

    def verdict(address: str) -> bool:
        try:
            policy.check(address)
        except UpstreamBlocked:
            return False
        return True

    expected = verdict(str(ip))
    assert verdict(f"::ffff:{ip}") == expected
    assert verdict(str(ipaddress.IPv6Address(f"64:ff9b::{ip}"))) == expected
    # 6to4 and the deprecated compatible form can only be stricter
    if not expected:
        assert not verdict(str(ipaddress.IPv6Address((0x2002 << 112) | (int(ip) << 80))))


@given(st.ip_addresses())
def test_allowed_addresses_are_global(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    try:
        AddressPolicy().check(str(ip))
    except UpstreamBlocked:
        return
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    assert not ip.is_private
    assert not ip.is_loopback
    assert not ip.is_link_local
    assert not ip.is_multicast
    assert not ip.is_unspecified


# --- resolve_checked ----------------------------------------------------------------


class ScriptedResolver:
    """A resolver that gives one scripted answer per call and records the calls."""

    def __init__(self, *answers: list[str] | BaseException) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        if isinstance(answer, BaseException):
            raise answer
        return list(answer)


RESOLVE = [
    # (answer, allow_private, expected list or error type, words in the message)
    (["8.8.8.8"], (), ["8.8.8.8"], ""),
    (["8.8.8.8", "8.8.8.8", "2606:4700::1111"], (), ["8.8.8.8", "2606:4700::1111"], ""),
    (["2606:4700:0::1111"], (), ["2606:4700::1111"], ""),
    (["8.8.8.8", "10.0.0.1"], (), UpstreamBlocked, "resolves to 10.0.0.1"),
    (["10.0.0.1", "8.8.8.8"], (), UpstreamBlocked, "whole name is refused"),
    (["8.8.8.8", "169.254.169.254"], (), UpstreamBlocked, "metadata"),
    (["::ffff:127.0.0.1"], (), UpstreamBlocked, "loopback"),
    (["64:ff9b::a9fe:a9fe"], (), UpstreamBlocked, "metadata"),
    (["127.0.0.1", "::1"], ["127.0.0.1", "::1"], ["127.0.0.1", "::1"], ""),
    (["127.0.0.1", "::1"], ["127.0.0.1"], UpstreamBlocked, "::1"),
    (["not-an-address"], (), UpstreamBlocked, "not an IP address"),
    ([], (), UpstreamError, "no addresses"),
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), (), UpstreamError, "could"),
    (OSError("network unreachable"), (), UpstreamError, "could not resolve"),
    (TimeoutError(), (), UpstreamTimeout, "timed out"),
]


@pytest.mark.parametrize(("answer", "allow", "expected", "words"), RESOLVE)
def test_resolve_checked(
    answer: list[str] | BaseException,
    allow: Sequence[str],
    expected: list[str] | type[Exception],
    words: str,
) -> None:
    resolver = ScriptedResolver(answer)
    run = resolve_checked("upstream.test", 443, AddressPolicy(allow), resolver=resolver)
    if isinstance(expected, list):
        assert asyncio.run(run) == expected
    else:
        with pytest.raises(expected) as info:
            asyncio.run(run)
        assert type(info.value) is expected
        assert words in str(info.value)
        assert "upstream.test" in str(info.value)
    assert resolver.calls == [("upstream.test", 443)]


@pytest.mark.parametrize(
    ("host", "result"),
    [
        ("8.8.8.8", ["8.8.8.8"]),
        ("2606:4700::1111", ["2606:4700::1111"]),
        ("[2606:4700::1111]", ["2606:4700::1111"]),
        ("8.8.8.8.", ["8.8.8.8"]),
        ("127.0.0.1", UpstreamBlocked),
        ("[::1]", UpstreamBlocked),
        ("::ffff:169.254.169.254", UpstreamBlocked),
        ("127.1", UpstreamBlocked),
        ("0x7f.0.0.1", UpstreamBlocked),
        ("2130706433", UpstreamBlocked),
        ("0177.0.0.1.", UpstreamBlocked),
    ],
)
def test_resolve_checked_literal_hosts_skip_dns(
    host: str, result: list[str] | type[Exception]
) -> None:
    resolver = ScriptedResolver(["8.8.8.8"])
    run = resolve_checked(host, 80, AddressPolicy(), resolver=resolver)
    if isinstance(result, list):
        assert asyncio.run(run) == result
    else:
        with pytest.raises(result):
            asyncio.run(run)
    assert resolver.calls == []


def test_resolve_checked_system_resolver_localhost() -> None:
    # localhost comes from the hosts file: no DNS query leaves the machine
    with pytest.raises(UpstreamBlocked, match="loopback"):
        asyncio.run(resolve_checked("localhost", 80, AddressPolicy()))
    addresses = asyncio.run(resolve_checked("localhost", 80, AddressPolicy(["127.0.0.0/8", "::1"])))
    assert addresses
    assert all(ipaddress.ip_address(a).is_loopback for a in addresses)


# --- PinnedResolver through a real aiohttp client and server --------------------------


@asynccontextmanager
async def loopback_server() -> AsyncIterator[tuple[int, list[str]]]:
    """A real aiohttp server on 127.0.0.1; yields its port and the Host headers it saw."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.host)
        return web.Response(text="hello from upstream")

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port, seen
    finally:
        await runner.cleanup()


def client(
    resolver: Callable[[str, int], Awaitable[list[str]]],
    allow: Sequence[str] = ("127.0.0.1",),
    *,
    use_dns_cache: bool = False,
) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        resolver=PinnedResolver(AddressPolicy(allow), resolver=resolver),
        use_dns_cache=use_dns_cache,
        force_close=True,  # a new connection, and so a new lookup, per request
    )
    return aiohttp.ClientSession(connector=connector, trust_env=False)


def test_pinned_resolver_rebinding_is_refused() -> None:
    # First answer: the allowed upstream. Second: a rebind to a loopback address
    # that is not allowed (127.0.0.2 stays on this machine even if the guard failed).
    async def scenario() -> None:
        async with loopback_server() as (port, seen):
            resolver = ScriptedResolver(["127.0.0.1"], ["127.0.0.2"], ["127.0.0.1"])
            async with client(resolver) as session:
                async with session.get(f"http://upstream.test:{port}/") as response:
                    assert response.status == 200
                    assert await response.text() == "hello from upstream"
                with pytest.raises(UpstreamBlocked, match=r"127\.0\.0\.2"):
                    await session.get(f"http://upstream.test:{port}/")
                async with session.get(f"http://upstream.test:{port}/") as response:
                    assert response.status == 200
            assert seen == [f"upstream.test:{port}", f"upstream.test:{port}"]
            assert resolver.calls == [("upstream.test", port)] * 3

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "answer",
    [
        ["127.0.0.1", "10.0.0.1"],
        ["10.0.0.1", "127.0.0.1"],
        ["127.0.0.1", "169.254.169.254"],
        ["127.0.0.1", "::ffff:169.254.169.254"],
        ["127.0.0.1", "64:ff9b::a9fe:a9fe"],
    ],
)
def test_pinned_resolver_mixed_answer_sends_nothing(answer: list[str]) -> None:
    async def scenario() -> None:
        async with loopback_server() as (port, seen):
            async with client(ScriptedResolver(answer)) as session:
                with pytest.raises(UpstreamBlocked):
                    await session.get(f"http://upstream.test:{port}/")
            assert seen == []

    asyncio.run(scenario())


def test_pinned_resolver_dns_cache_holds_only_checked_addresses() -> None:
    async def scenario() -> None:
        async with loopback_server() as (port, seen):
            resolver = ScriptedResolver(["127.0.0.1"], ["127.0.0.2"])
            async with client(resolver, use_dns_cache=True) as session:
                for _ in range(3):
                    async with session.get(f"http://upstream.test:{port}/") as response:
                        assert response.status == 200
            assert len(seen) == 3
            assert len(resolver.calls) == 1

    asyncio.run(scenario())


def test_pinned_resolver_failed_lookup_is_upstream_error() -> None:
    async def scenario() -> None:
        resolver = ScriptedResolver(socket.gaierror(socket.EAI_NONAME, "unknown"))
        async with client(resolver) as session:
            with pytest.raises(UpstreamError) as info:
                await session.get("http://upstream.test:9/")
            assert not isinstance(info.value, UpstreamBlocked)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("answer", "family", "expected"),
    [
        (["127.0.0.1", "::1"], socket.AF_UNSPEC, ["127.0.0.1", "::1"]),
        (["127.0.0.1", "::1"], socket.AF_INET, ["127.0.0.1"]),
        (["127.0.0.1", "::1"], socket.AF_INET6, ["::1"]),
        (["127.0.0.1"], socket.AF_INET6, []),
    ],
)
def test_pinned_resolver_results(
    answer: list[str], family: socket.AddressFamily, expected: list[str]
) -> None:
    pinned = PinnedResolver(AddressPolicy(["127.0.0.1", "::1"]), resolver=ScriptedResolver(answer))

    async def scenario() -> None:
        if not expected:
            with pytest.raises(UpstreamError, match="no address of family"):
                await pinned.resolve("upstream.test", 8443, family)
            return
        results = await pinned.resolve("upstream.test", 8443, family)
        assert [r["host"] for r in results] == expected
        for r in results:
            assert r["hostname"] == "upstream.test"
            assert r["port"] == 8443
            assert r["family"] == (socket.AF_INET6 if ":" in r["host"] else socket.AF_INET)
            assert r["flags"] & socket.AI_NUMERICHOST
        await pinned.close()

    asyncio.run(scenario())
