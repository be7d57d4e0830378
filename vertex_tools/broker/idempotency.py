"""Idempotency keys the broker sets on a provider's POSTs (Stripe's Idempotency-Key).

Chosen before the first attempt, so no retry can charge or refund twice. An
agent's own key is never forwarded as is: it is mapped to a key of its token,
so the agent's retries stay idempotent and no token can collide with another's
keys; without one, the broker's request id is used.
"""

from __future__ import annotations

import blake3

__all__ = ["idempotency_for"]


def idempotency_for(
    method: str,
    headers: list[tuple[bytes, bytes]],
    provider: str,
    *,
    request_id: str,
    token_id: str,
) -> tuple[str, str] | None:
    """The (header, key) to send upstream, or None when the provider takes none."""
    if provider == "http" or method != "POST":
        return None
    from vertex_tools.providers import get_catalog

    header = get_catalog(provider).idempotency_header
    if header is None:
        return None
    agent_key = next(
        (v.decode("latin-1") for k, v in headers if k.decode("latin-1").lower() == header.lower()),
        None,
    )
    if agent_key is None:
        return header, f"vt-{request_id}"
    digest = blake3.blake3(f"{token_id}\0{agent_key}".encode()).hexdigest()[:32]
    return header, f"vt-{digest}"
