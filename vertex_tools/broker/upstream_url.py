"""Upstream base URLs from operator config, parsed strictly (invariant 1 of netguard).

Any spelling that two URL parsers could read differently (userinfo, backslashes,
non-canonical IPv4 numbers, percent-encoded hosts, dot segments) is refused, not
repaired: the broker must reach exactly the upstream the operator named.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from vertex_tools.errors import ConfigError

__all__ = ["UpstreamURL", "is_canonical_ipv4", "looks_numeric", "parse_upstream_url"]

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
    if looks_numeric(host):
        if not is_canonical_ipv4(host):
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


def looks_numeric(host: str) -> bool:
    """True when a URL parser would read ``host`` as an IPv4 number (WHATWG "ends in a number")."""
    last = host.rsplit(".", 1)[-1]
    if last.isascii() and last.isdigit():
        return True
    return _HEX_LABEL.fullmatch(last) is not None


def is_canonical_ipv4(host: str) -> bool:
    """True for dotted-quad IPv4 with no leading zeros (127.0.0.1, not 127.1 or 0177.0.0.1)."""
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
