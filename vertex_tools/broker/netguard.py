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
import socket
from collections.abc import Awaitable, Callable, Sequence

from aiohttp.abc import AbstractResolver, ResolveResult

from vertex_tools.broker.upstream_url import (
    UpstreamURL,
    is_canonical_ipv4,
    looks_numeric,
    parse_upstream_url,
)
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
    if looks_numeric(literal.removesuffix(".")):
        literal = literal.removesuffix(".")
        if not is_canonical_ipv4(literal):
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
