"""Step 1b of the pipeline: bind an agent's idempotency key to its request.

Runs after authentication and before anything is decided or read upstream, so
a key reused for another request is refused before anything leaves the
broker (not even a refund's charge look-up). Keys are per token; the store's
``claim_idempotency`` answers NEW (recorded now), SAME (a retry: forwarded,
and mapped to the same upstream key) or CONFLICT (refused,
``idempotency_key_reused``).
"""

from __future__ import annotations

import logging

from vertex_tools.broker.idempotency import agent_key, request_digest
from vertex_tools.broker.runtime import Runtime
from vertex_tools.decision import Decision, Reason
from vertex_tools.errors import RequestRejected, StoreError
from vertex_tools.policy.durations import parse_duration
from vertex_tools.policy.models import Policy
from vertex_tools.store.base import IdempotencyClaim

__all__ = ["claim_agent_key"]

log = logging.getLogger("vertex_tools.broker")


async def claim_agent_key(
    rt: Runtime,
    *,
    policy: Policy,
    upstream: str,
    method: str,
    path: str,
    query: str,
    headers: list[tuple[bytes, bytes]],
    content_type: str,
    body: bytes,
    token_id: str,
    now: float,
) -> tuple[Decision | None, IdempotencyClaim | None]:
    """A refusal (or None to go on), and what the key meant (None: no agent key)."""
    configured = policy.upstreams.get(upstream)
    if configured is None:
        return None, None  # the engine refuses an unknown upstream, with its own reason
    try:
        key = agent_key(method, headers, configured.provider)
    except RequestRejected as exc:
        return Decision.deny(Reason.BAD_REQUEST, "headers", str(exc)), None
    if key is None:
        return None, None
    digest = request_digest(
        method=method,
        upstream=upstream,
        path=path,
        query=query,
        content_type=content_type,
        body=body,
    )
    ttl = float(parse_duration(policy.settings.idempotency_ttl))
    store = rt.store
    assert store is not None
    try:
        claim = await rt.db(lambda: store.claim_idempotency(token_id, key, digest, now, ttl))
    except StoreError as exc:
        log.error("state database failed: %s", exc)
        return (
            Decision.deny(
                Reason.AUDIT_UNAVAILABLE, "store", "the broker's state database is unavailable"
            ),
            None,
        )
    if claim is IdempotencyClaim.CONFLICT:
        return (
            Decision.deny(
                Reason.IDEMPOTENCY_KEY_REUSED,
                "settings.idempotency_ttl",
                f"the idempotency key {key[:64]!r} was already used by this token for a "
                f"different request (within {policy.settings.idempotency_ttl}); nothing was "
                "sent. Use a new key for a new request, and the same key only to retry the "
                "very same one",
            ),
            claim,
        )
    return None, claim
