"""SSRF guard: which upstream URLs are well formed and which addresses may be reached.

The broker forwards requests carrying real provider secrets, so the address a
request reaches matters as much as the policy that allowed it. Invariants:

1. An upstream base URL is parsed strictly, once, from operator config; any
   spelling that two URL parsers could read differently (userinfo, backslashes,
   non-canonical IPv4 numbers, percent-encoded hosts) is refused, not repaired.
2. Every address a host name resolves to is checked; one blocked address
   refuses the whole name, so a name cannot mix a public and a private answer.
3. An IPv6 address that carries an IPv4 address (mapped, compatible, 6to4,
   NAT64, Teredo) is judged by the IPv4 address as well.
4. The connection goes to an address that was checked: ``PinnedResolver`` hands
   aiohttp only checked addresses, so a second DNS answer (rebinding) never
   reaches the socket unchecked.
5. Anything that is not clearly public is blocked unless the operator listed it
   in ``settings.allow_private_upstreams``.

aiohttp never calls its resolver for a URL whose host is an IP literal, so the
forwarding code must check literal hosts itself (``AddressPolicy.check``, or
``resolve_checked``, which checks a literal without DNS).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult

from vertex_tools.errors import ConfigError, UpstreamBlocked, UpstreamError, UpstreamTimeout

__all__ = [
    "AddressPolicy",
    "PinnedResolver",
    "Resolver",
    "UpstreamURL",
    "parse_upstream_url",
    "resolve_checked",
]

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""An injectable name lookup: ``(host, port) -> [address, ...]``."""

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_FIX = "if this upstream is meant to be private, add it to settings.allow_private_upstreams"

# --- URL parsing ---------------------------------------------------------------

_MAX_URL = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_LABEL = re.compile(r"(?!-)[a-z0-9_\-]{1,63}(?<!-)")
_PORT = re.compile(r"[0-9]{1,5}")
# RFC 3986 pchar, with percent-escapes checked separately.
_PATH_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HEX_LABEL = re.compile(r"0[xX][0-9A-Fa-f]*")
_CANONICAL_OCTET = re.compile(r"0|[1-9][0-9]{0,2}")


@dataclass(frozen=True)
class UpstreamURL:
    """A parsed upstream base URL.

    ``host`` is lower-case, without a trailing dot, and an IPv6 address is
    stored without brackets. ``base_path`` is ``""`` or starts with ``/`` and
    never ends with ``/``, so ``base_path + request_path`` joins cleanly.
    """

    scheme: str
    host: str
    port: int
    base_path: str

    @property
    def origin(self) -> str:
        """``scheme://host:port`` with an IPv6 host bracketed, for building request URLs."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_upstream_url(url: str) -> UpstreamURL:
    """Parse an operator-written upstream base URL, refusing anything ambiguous.

    Raises :class:`ConfigError` naming what was wrong. Messages never repeat
    the whole URL: a URL with user info or a query may carry a credential.
    """
    # 1. characters: reject before splitting, so no parser quirk can act on them
    if not isinstance(url, str):
        raise ConfigError(f"upstream URL must be a string, not {type(url).__name__}")
    if not url:
        raise ConfigError("upstream URL is empty")
    if len(url) > _MAX_URL:
        raise ConfigError(f"upstream URL is longer than {_MAX_URL} characters")
    for ch in url:
        if ch.isspace():
            raise ConfigError("upstream URL contains whitespace")
        if ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F:
            raise ConfigError("upstream URL contains a control character")
        if ch == "\\":
            # WHATWG parsers read "\" as "/", RFC 3986 parsers do not: two readings
            raise ConfigError("upstream URL contains a backslash")
        if ord(ch) > 0x7E:
            raise ConfigError(
                "upstream URL contains a non-ASCII character; write host names in "
                "punycode (xn--...) and percent-encode the path"
            )
    if "?" in url:
        raise ConfigError("upstream URL must not have a query (the request supplies it)")
    if "#" in url:
        raise ConfigError("upstream URL must not have a fragment")

    # 2. scheme
    scheme_raw, sep, rest = url.partition(":")
    if not sep or not _SCHEME.fullmatch(scheme_raw):
        raise ConfigError("upstream URL has no scheme; write http://... or https://...")
    scheme = scheme_raw.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ConfigError(f"upstream URL scheme {scheme!r} is not allowed (http or https only)")
    if not rest.startswith("//"):
        raise ConfigError("upstream URL must have '//' and a host after the scheme")

    # 3. authority
    authority, slash, path = rest[2:].partition("/")
    path = slash + path
    if "@" in authority:
        raise ConfigError(
            "upstream URL must not contain user info (user:password@); "
            "credentials belong in the vault"
        )
    host, port = _split_authority(authority, _DEFAULT_PORTS[scheme])

    # 4. path
    return UpstreamURL(scheme=scheme, host=host, port=port, base_path=_base_path(path))


def _split_authority(authority: str, default_port: int) -> tuple[str, int]:
    if authority.startswith("["):
        end = authority.find("]")
        if end == -1:
            raise ConfigError("upstream URL has an unclosed '[' in its host")
        literal, after = authority[1:end], authority[end + 1 :]
        if after and not after.startswith(":"):
            raise ConfigError("upstream URL has characters after the ']' of its IPv6 host")
        if "%" in literal:
            raise ConfigError("upstream URL IPv6 host must not carry a zone id")
        try:
            host = str(ipaddress.IPv6Address(literal))
        except ValueError as exc:
            raise ConfigError(f"upstream URL host [{literal}] is not an IPv6 address") from exc
        return host, _port(after[1:], default_port) if after else default_port

    host_raw, colon, port_raw = authority.partition(":")
    if colon and ":" in port_raw:
        raise ConfigError("upstream URL IPv6 host must be written in brackets: [2001:db8::1]")
    port = _port(port_raw, default_port) if colon else default_port
    return _check_host(host_raw), port


def _port(raw: str, default_port: int) -> int:
    if not raw:
        raise ConfigError("upstream URL has ':' but no port number")
    if not _PORT.fullmatch(raw):
        raise ConfigError(f"upstream URL port {raw!r} is not a number")
    port = int(raw)
    if not 1 <= port <= 65535:
        raise ConfigError(f"upstream URL port {port} is out of range (1-65535)")
    return port


def _check_host(raw: str) -> str:
    if not raw:
        raise ConfigError("upstream URL has an empty host")
    if "%" in raw:
        raise ConfigError("upstream URL host must not be percent-encoded")
    host = raw.lower()
    # one trailing dot is the DNS root; the policy and the TLS name check want it gone
    host = host.removesuffix(".")
    if not host:
        raise ConfigError("upstream URL has an empty host")
    if _looks_numeric(host):
        if not _is_canonical_ipv4(host):
            raise ConfigError(
                f"upstream URL host {raw!r} is an IPv4 address in a non-canonical form "
                "(octal, hex, integer or shortened); write it as four decimal numbers"
            )
        return host
    if len(host) > 253:
        raise ConfigError("upstream URL host is longer than 253 characters")
    for label in host.split("."):
        if not _LABEL.fullmatch(label):
            raise ConfigError(
                f"upstream URL host {raw!r} has an invalid label {label!r} "
                "(letters, digits, '-' and '_' only; no empty labels)"
            )
    return host


def _looks_numeric(host: str) -> bool:
    """True when a URL parser would read ``host`` as an IPv4 number (WHATWG "ends in a number")."""
    last = host.rsplit(".", 1)[-1]
    if last.isascii() and last.isdigit():
        return True
    return _HEX_LABEL.fullmatch(last) is not None


def _is_canonical_ipv4(host: str) -> bool:
    parts = host.split(".")
    return len(parts) == 4 and all(
        _CANONICAL_OCTET.fullmatch(p) is not None and int(p) <= 255 for p in parts
    )


def _base_path(path: str) -> str:
    if not _PATH_CHARS.fullmatch(path):
        raise ConfigError("upstream URL path has characters that must be percent-encoded")
    if _PERCENT.search(path):
        raise ConfigError("upstream URL path has a '%' that is not followed by two hex digits")
    trimmed = path.rstrip("/")
    segments = trimmed.split("/")[1:]
    for segment in segments:
        if not segment:
            raise ConfigError("upstream URL path has an empty segment ('//')")
        # decode escapes only to spot "%2e%2e", which servers may still read as ".."
        if segment.replace("%2e", ".").replace("%2E", ".") in {".", ".."}:
            raise ConfigError("upstream URL path must not contain '.' or '..' segments")
    return trimmed


# --- address policy --------------------------------------------------------------

# Named here, not left to ipaddress, because Python versions disagree on some
# of them (3.11 calls fec0::/10, 3fff::/20 and 192.0.0.0/24 global) and because
# a message naming the range tells the operator more than "not global".
# First match wins, so narrower ranges come first.
_BLOCKED: tuple[tuple[_IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), why)
    for net, why in (
        ("0.0.0.0/8", "in 0.0.0.0/8 ('this network')"),
        ("10.0.0.0/8", "a private address (10.0.0.0/8)"),
        ("100.64.0.0/10", "carrier-grade NAT shared space (100.64.0.0/10)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.169.254/32", "the cloud metadata endpoint (link-local 169.254.169.254)"),
        ("169.254.0.0/16", "link-local (169.254.0.0/16)"),
        ("172.16.0.0/12", "a private address (172.16.0.0/12)"),
        ("192.0.0.0/24", "IETF protocol assignments (192.0.0.0/24)"),
        ("192.0.2.0/24", "documentation (192.0.2.0/24)"),
        ("192.168.0.0/16", "a private address (192.168.0.0/16)"),
        ("198.18.0.0/15", "benchmarking (198.18.0.0/15)"),
        ("198.51.100.0/24", "documentation (198.51.100.0/24)"),
        ("203.0.113.0/24", "documentation (203.0.113.0/24)"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "the limited broadcast address"),
        ("240.0.0.0/4", "reserved (240.0.0.0/4)"),
        ("fd00:ec2::254/128", "the cloud metadata endpoint (fd00:ec2::254)"),
        ("::1/128", "loopback"),
        ("::/128", "the unspecified address"),
        ("64:ff9b:1::/48", "local-use NAT64 (64:ff9b:1::/48)"),
        ("100::/64", "discard-only (100::/64)"),
        ("2001::/23", "IETF protocol assignments (2001::/23)"),
        ("2001:db8::/32", "documentation (2001:db8::/32)"),
        ("3fff::/20", "documentation (3fff::/20)"),
        ("5f00::/16", "segment routing (5f00::/16)"),
        ("fc00::/7", "unique local (fc00::/7)"),
        ("fe80::/10", "link-local (fe80::/10)"),
        ("fec0::/10", "site-local (fec0::/10)"),
        ("ff00::/8", "multicast"),
    )
)
# (version, integer) so that a scope id ("%eth0") cannot make a metadata address look different
_METADATA = frozenset(
    {
        (4, int(ipaddress.IPv4Address("169.254.169.254"))),
        (6, int(ipaddress.IPv6Address("fd00:ec2::254"))),
    }
)
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class AddressPolicy:
    """Decides which IP addresses an upstream connection may reach.

    An address is allowed when it is publicly routable (``is_global`` and not
    multicast, reserved, unspecified or in one of the ranges named above), or
    when it falls in ``allow_private``: IP addresses or CIDR networks the
    operator listed in ``settings.allow_private_upstreams``. A cloud metadata
    endpoint is allowed only by an entry naming that exact address.
    """

    def __init__(self, allow_private: Sequence[str] = ()) -> None:
        """Parse ``allow_private``; raise :class:`ConfigError` on a malformed entry."""
        if isinstance(allow_private, str | bytes):
            # a lone string would be read character by character
            raise ConfigError("allow_private_upstreams must be a list of addresses, not a string")
        networks: list[_IPNetwork] = []
        for entry in allow_private:
            if not isinstance(entry, str):
                raise ConfigError(
                    f"allow_private_upstreams entry {entry!r} is not a string "
                    "(write an IP address or a CIDR network)"
                )
            try:
                network = ipaddress.ip_network(entry.strip(), strict=True)
            except ValueError as exc:
                raise ConfigError(
                    f"allow_private_upstreams entry {entry!r} is not an IP address or "
                    f"CIDR network: {exc}"
                ) from exc
            if network.prefixlen == 0:
                raise ConfigError(
                    f"allow_private_upstreams entry {entry!r} allows every address, which "
                    "turns the SSRF guard off; list the private networks you need"
                )
            networks.append(network)
        self._allowed: tuple[_IPNetwork, ...] = tuple(networks)

    def __repr__(self) -> str:
        return f"AddressPolicy(allow_private={[str(n) for n in self._allowed]!r})"

    def check(self, address: str) -> None:
        """Return if ``address`` may be reached; raise :class:`UpstreamBlocked` if not."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError as exc:
            raise UpstreamBlocked(
                f"upstream address {address!r} is blocked: it is not an IP address"
            ) from exc
        why = self._reason(ip)
        if why is not None:
            raise UpstreamBlocked(f"upstream address {ip} is blocked: it is {why}; {_FIX}")

    def _reason(self, ip: _IPAddress) -> str | None:
        """Why ``ip`` is blocked, or ``None`` when it is allowed."""
        if self._is_allowed(ip):
            return None
        if isinstance(ip, ipaddress.IPv4Address):
            return _own_reason(ip)
        # The mapped and NAT64 well-known forms are only notations for an IPv4
        # address (Python calls all of ::/8 reserved, which would block every
        # DNS64 answer), so they are judged by that address alone.
        if ip.ipv4_mapped is not None:
            return _embedded(ip.ipv4_mapped, self._reason(ip.ipv4_mapped))
        if ip in _NAT64_WELL_KNOWN:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
            return _embedded(inner, self._reason(inner))
        own = _own_reason(ip)
        if own is not None:
            return own
        for inner in _embedded_ipv4(ip):
            why = self._reason(inner)
            if why is not None:
                return _embedded(inner, why)
        return None

    def _is_allowed(self, ip: _IPAddress) -> bool:
        if (ip.version, int(ip)) in _METADATA:
            # a network entry (169.254.0.0/16 for some link-local service)
            # must not quietly open the metadata endpoint: only naming it does
            return any(
                net.num_addresses == 1
                and (net.version, int(net.network_address)) == (ip.version, int(ip))
                for net in self._allowed
            )
        return any(ip.version == net.version and ip in net for net in self._allowed)


def _own_reason(ip: _IPAddress) -> str | None:
    """Why ``ip`` itself (ignoring any embedded IPv4) is not a public address."""
    for network, why in _BLOCKED:
        if ip.version == network.version and ip in network:
            return why
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_loopback:
        return "loopback"
    if ip.is_multicast:
        return "multicast"
    if ip.is_link_local:
        return "link-local"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not globally routable"
    return None


def _embedded(inner: ipaddress.IPv4Address, why: str | None) -> str | None:
    return None if why is None else f"an IPv6 form of {inner}, which is {why}"


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses a connection to ``ip`` may actually reach through a translator."""
    found: list[ipaddress.IPv4Address] = []
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64_LOCAL:
        # RFC 6052 for a /48 prefix: 16 bits, skip the "u" octet, 16 bits
        packed = ip.packed
        found.append(ipaddress.IPv4Address(packed[6:8] + packed[9:11]))
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


# --- resolution ------------------------------------------------------------------


async def _system_resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


async def resolve_checked(
    host: str,
    port: int,
    policy: AddressPolicy,
    *,
    resolver: Resolver | None = None,
) -> list[str]:
    """Resolve ``host`` and check every address; return them (deduplicated, in order).

    If any address is blocked the whole name is refused with
    :class:`UpstreamBlocked`: a name that answers with a public and a private
    address at once is exactly what a rebinding attack looks like. An IP
    literal is checked without a lookup. A failed lookup raises
    :class:`UpstreamError` (:class:`UpstreamTimeout` when it timed out).
    ``resolver`` defaults to the event loop's ``getaddrinfo``.
    """
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if _looks_numeric(literal.removesuffix(".")):
        literal = literal.removesuffix(".")
        if not _is_canonical_ipv4(literal):
            # getaddrinfo would read "127.1" or "0x7f.1" as an address: refuse, never guess
            raise UpstreamBlocked(
                f"upstream host {host!r} is an IPv4 address in a non-canonical form; "
                "write it as four decimal numbers"
            )
    try:
        ip = ipaddress.ip_address(literal)
    except ValueError:
        pass
    else:
        policy.check(str(ip))
        return [str(ip)]

    lookup = resolver if resolver is not None else _system_resolve
    try:
        answers = await lookup(host, port)
    except TimeoutError as exc:
        raise UpstreamTimeout(
            f"resolving upstream host {host!r} timed out", maybe_delivered=False
        ) from exc
    except (OSError, UnicodeError) as exc:
        raise UpstreamError(
            f"could not resolve upstream host {host!r}: {exc}", maybe_delivered=False
        ) from exc
    if not answers:
        raise UpstreamError(
            f"upstream host {host!r} resolved to no addresses", maybe_delivered=False
        )

    checked: list[str] = []
    for answer in answers:
        try:
            ip = ipaddress.ip_address(answer)
        except ValueError as exc:
            raise UpstreamBlocked(
                f"upstream host {host!r} resolved to {answer!r}, which is not an IP address"
            ) from exc
        why = policy._reason(ip)
        if why is not None:
            raise UpstreamBlocked(
                f"upstream host {host!r} resolves to {ip}, which is {why}; "
                f"the whole name is refused; {_FIX}"
            )
        if str(ip) not in checked:
            checked.append(str(ip))
    return checked


class PinnedResolver(AbstractResolver):
    """An aiohttp resolver that only ever hands out addresses that passed the policy.

    Use it as ``aiohttp.TCPConnector(resolver=PinnedResolver(policy))``. Each
    lookup goes through :func:`resolve_checked` and aiohttp connects to one of
    the addresses returned, so the address checked is the address connected
    to: a DNS answer that changes between check and connect (rebinding) is
    checked again, never used unchecked. aiohttp does not call a resolver for
    an IP-literal host; check those with :meth:`AddressPolicy.check`.
    """

    def __init__(self, policy: AddressPolicy, *, resolver: Resolver | None = None) -> None:
        """Check every answer against ``policy``; ``resolver`` replaces DNS in tests."""
        self._policy = policy
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host`` and return only checked addresses of ``family`` (or any, if 0)."""
        addresses = await resolve_checked(host, port, self._policy, resolver=self._resolver)
        results: list[ResolveResult] = []
        for address in addresses:
            found = socket.AF_INET6 if ":" in address else socket.AF_INET
            if family not in (socket.AF_UNSPEC, found):
                continue
            results.append(
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=port,
                    family=found,
                    proto=0,
                    # numeric: the socket layer must not resolve the address again
                    flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                )
            )
        if not results:
            raise UpstreamError(
                f"upstream host {host!r} has no address of family {family!r}",
                maybe_delivered=False,
            )
        return results

    async def close(self) -> None:
        """Nothing to release: lookups hold no resources between calls."""
