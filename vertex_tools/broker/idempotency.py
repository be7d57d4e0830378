"""Idempotency keys: the one the broker sends upstream, and the agent's own.

The upstream key (Stripe's ``Idempotency-Key``) is chosen before the first
attempt, so no retry can charge or refund twice. An agent's own key (the
Stripe SDK sends one on every POST, and the same one on its retries) is never
forwarded as is: it is mapped to a key of its token, so the agent's retries
stay idempotent and no token can collide with another's keys; without one,
the broker's request id is used.

An agent's key is also bound to the request it first came with
(:func:`request_digest`, kept ``settings.idempotency_ttl`` by the store's
``claim_idempotency``): the same key with other parameters is refused before
anything leaves, as Stripe would refuse it, instead of being answered from the
upstream's cache with the first request's result.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import blake3

from vertex_tools.errors import RequestRejected

__all__ = ["MAX_AGENT_KEY", "agent_key", "idempotency_for", "request_digest"]

MAX_AGENT_KEY = 255
"""The longest agent key accepted (Stripe's own limit)."""

_DIGEST_DOMAIN = b"vertex-tools/idempotency-request/v1\x00"


def _header_of(method: str, provider: str) -> str | None:
    if provider == "http" or method != "POST":
        return None
    from vertex_tools.providers import get_catalog

    return get_catalog(provider).idempotency_header


def agent_key(method: str, headers: list[tuple[bytes, bytes]], provider: str) -> str | None:
    """The idempotency key the agent sent, or None (no key, or none that matters here).

    :class:`RequestRejected` when the header is repeated with different values,
    empty, or longer than :data:`MAX_AGENT_KEY`.
    """
    header = _header_of(method, provider)
    if header is None:
        return None
    name = header.lower().encode("latin-1")
    values = {v.decode("latin-1").strip() for k, v in headers if k.lower() == name}
    if not values:
        return None
    if len(values) > 1:
        raise RequestRejected(f"{header} appears more than once with different values")
    key = values.pop()
    if not key or len(key) > MAX_AGENT_KEY:
        raise RequestRejected(f"{header} must be 1 to {MAX_AGENT_KEY} characters")
    return key


def request_digest(
    *, method: str, upstream: str, path: str, query: str, content_type: str, body: bytes
) -> str:
    """What a key is bound to: BLAKE3 over method, upstream, path, query and the body in
    canonical form (form fields in a stable order by name, JSON with sorted keys), so a
    retry that encodes the same parameters differently is still the same request."""
    media = content_type.split(";", 1)[0].strip().lower()
    canonical = _canonical_body(media, body)
    parts = [method, upstream, path, query, media]
    hasher = blake3.blake3(_DIGEST_DOMAIN)
    for part in parts:
        encoded = part.encode("utf-8", "surrogateescape")
        hasher.update(len(encoded).to_bytes(8, "big") + encoded)
    hasher.update(len(canonical).to_bytes(8, "big") + canonical)
    return hasher.hexdigest()


def _canonical_body(media: str, body: bytes) -> bytes:
    if media == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            return b"raw\x00" + body
        # Stable by name: repeated fields (``expand[]``) keep their order, which may matter.
        ordered = sorted(pairs, key=lambda pair: pair[0])
        return b"form\x00" + json.dumps(ordered, separators=(",", ":")).encode()
    if media == "application/json" or media.endswith("+json"):
        try:
            value = json.loads(body)
        except (ValueError, RecursionError):
            return b"raw\x00" + body
        return b"json\x00" + json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return b"raw\x00" + body


def idempotency_for(
    method: str,
    headers: list[tuple[bytes, bytes]],
    provider: str,
    *,
    request_id: str,
    token_id: str,
) -> tuple[str, str] | None:
    """The (header, key) to send upstream, or None when the provider takes none."""
    header = _header_of(method, provider)
    if header is None:
        return None
    agent = next(
        (
            v.decode("latin-1").strip()
            for k, v in headers
            if k.decode("latin-1").lower() == header.lower()
        ),
        None,
    )
    if agent is None:
        return header, f"vt-{request_id}"
    digest = blake3.blake3(f"{token_id}\0{agent}".encode()).hexdigest()[:32]
    return header, f"vt-{digest}"
