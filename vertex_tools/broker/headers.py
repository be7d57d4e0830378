"""Which HTTP headers cross the broker, in each direction.

Requests: an allowlist. The agent is untrusted, so only headers that shape
content negotiation or select an API version are forwarded; credentials,
routing, framing and every unknown header are dropped, and the broker adds
its own credential afterwards. A malformed header anywhere in the request is
refused outright rather than dropped: it is either a bug or an attempt at
request smuggling, and either way nothing should be forwarded.

Responses: a denylist. The upstream is named by the operator, so its headers
are passed back except those that describe the upstream connection (hop by
hop), the body framing (the broker re-frames the scrubbed body), upstream
sessions, and the broker's own ``x-vertex-*`` namespace. Header values are
scrubbed of secrets separately (``Scrubber.scrub_headers``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from vertex_tools.errors import ConfigError, RequestRejected

__all__ = [
    "REQUEST_HEADER_ALLOWLIST",
    "clean_response_headers",
    "forwardable_request_headers",
]

REQUEST_HEADER_ALLOWLIST: frozenset[str] = frozenset(
    {
        "accept",
        "accept-language",
        "content-type",
        "user-agent",
        "if-match",
        "if-none-match",
        "if-modified-since",
        # not range / if-range: slices of a response that quotes the secret would each
        # pass the scrubber and could be put back together by the agent
        "prefer",  # PostgREST: return=representation, count=exact
        "stripe-version",
        # not stripe-account: switching the account is a control argument,
        # decided by policy, never by a header the agent chooses
        "x-github-api-version",
        "accept-profile",  # PostgREST schema selection
        "content-profile",
    }
)
"""Request headers forwarded to the upstream (lower-case). Everything else is dropped."""

# Never forwardable, even through ``extra_allowed``: credentials, and headers
# that decide where a request goes or how its body is framed.
_NEVER_FORWARDED = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "apikey",
        "x-api-key",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "forwarded",
        "x-real-ip",
    }
)
_NEVER_FORWARDED_PREFIXES = ("x-forwarded-", "x-vertex-", "vertex-", "proxy-")

# One value only: two would let the broker and the upstream read different ones.
_SINGLE_VALUED = frozenset(
    {
        "content-type",
        "range",
        "if-modified-since",
        "stripe-version",
        "x-github-api-version",
        "accept-profile",
        "content-profile",
    }
)

_RESPONSE_DROPPED = frozenset(
    {
        # hop by hop (RFC 9110 section 7.6.1): about the upstream connection only
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        # framing: the broker sends the scrubbed, decompressed body itself
        "content-length",
        "content-encoding",
        # an upstream session is a credential the agent must not hold
        "set-cookie",
        "set-cookie2",
        # alternative endpoints of the upstream would be read as the broker's own
        "alt-svc",
    }
)
# vertex-* are the broker's own answer headers (vertex-decision): an upstream must
# not be able to forge a refusal or point at another audit entry.
_RESPONSE_DROPPED_PREFIXES = ("proxy-", "x-vertex-", "vertex-")

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN_TEXT = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# CTLs except horizontal tab: CR and LF split headers, NUL truncates them
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_BAD_VALUE_TEXT = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def forwardable_request_headers(
    headers: Iterable[tuple[bytes, bytes]],
    *,
    extra_allowed: frozenset[str] = frozenset(),
) -> list[tuple[str, str]]:
    """Return the agent's headers that may be forwarded: ``(lower-case name, value)``.

    Only names in :data:`REQUEST_HEADER_ALLOWLIST` or ``extra_allowed`` pass;
    everything else is dropped. Every header is validated first, forwarded or
    not: :class:`RequestRejected` for a name that is not an RFC 9110 token, a
    value holding CR, LF, NUL or another control character (tab is allowed),
    or a repeated single-valued header such as ``content-type``. Values are
    decoded as latin-1 and stripped of surrounding spaces and tabs.
    ``extra_allowed`` may not name a credential, routing or framing header
    (:class:`ConfigError`). Messages name the header, never its value.
    """
    allowed = REQUEST_HEADER_ALLOWLIST | _check_extra(extra_allowed)
    forwarded: list[tuple[str, str]] = []
    seen: set[str] = set()
    for raw_name, raw_value in headers:
        # 1. well formed, whether or not it is forwarded
        if not _TOKEN.fullmatch(raw_name):
            raise RequestRejected(f"request header name {raw_name!r} is not a valid token")
        name = raw_name.decode("ascii").lower()
        if _BAD_VALUE.search(raw_value):
            raise RequestRejected(f"request header {name!r} has a control character in its value")
        # 2. single-valued headers appear once
        if name in _SINGLE_VALUED:
            if name in seen:
                raise RequestRejected(f"request header {name!r} appears more than once")
            seen.add(name)
        # 3. allowlist
        if name in allowed:
            forwarded.append((name, raw_value.decode("latin-1").strip(" \t")))
    return forwarded


def _check_extra(extra_allowed: frozenset[str]) -> frozenset[str]:
    names: set[str] = set()
    for entry in extra_allowed:
        if not isinstance(entry, str) or not _TOKEN_TEXT.fullmatch(entry):
            raise ConfigError(f"extra allowed header {entry!r} is not a valid header name")
        name = entry.lower()
        if name in _NEVER_FORWARDED or name.startswith(_NEVER_FORWARDED_PREFIXES):
            raise ConfigError(
                f"header {name!r} can never be forwarded from an agent: it carries a "
                "credential or decides where the request goes"
            )
        names.add(name)
    return frozenset(names)


def clean_response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Return the upstream's response headers that may reach the agent, names lower-cased.

    Dropped: hop-by-hop headers and any header the ``connection`` header
    names, ``proxy-*``, ``content-length`` and ``content-encoding`` (the
    broker re-frames the scrubbed body), ``set-cookie`` (an upstream session
    is a credential), ``alt-svc``, ``x-vertex-*`` and ``vertex-*`` (only the
    broker writes those), and any header with a malformed name or a control character in
    its value. Kept, among others: ``location`` (redirects are returned, never
    followed) and ``www-authenticate``.
    """
    pairs: list[tuple[str, str]] = []
    for name, value in headers:
        # checked before lower-casing: str.lower() maps some non-ASCII letters
        # (the Kelvin sign) onto ASCII ones
        if not _TOKEN_TEXT.fullmatch(name) or _BAD_VALUE_TEXT.search(value):
            continue  # the upstream's mistake is not passed on to the agent
        pairs.append((name.lower(), value))
    named_by_connection = {
        token.strip().lower()
        for name, value in pairs
        if name == "connection"
        for token in value.split(",")
    }
    return [
        (name, value)
        for name, value in pairs
        if name not in _RESPONSE_DROPPED
        and name not in named_by_connection
        and not name.startswith(_RESPONSE_DROPPED_PREFIXES)
    ]
