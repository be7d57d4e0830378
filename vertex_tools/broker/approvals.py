"""Held requests: the binding of an approval to one exact request.

An approval is bound to the token, the upstream, the method, the path, the
query (its exact bytes), the canonical body (JSON re-serialised with sorted
keys when it has no repeated key, anything else as raw bytes) and the forwarded
headers that change what the upstream does, by a BLAKE3
digest with a version and a domain prefix. Approving one refund therefore
never approves another amount, another charge or another recipient, and the
agent's retry (signed afresh, with a new nonce) finds the approval because
the request itself is the same. An approval is used once.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import blake3

from vertex_tools.broker.answers import redact_tokens
from vertex_tools.broker.controls import Unreadable, media_type, strict_json
from vertex_tools.decision import Decision, Effect, Reason
from vertex_tools.store import ApprovalRecord, ApprovalState, PendingApprovalsFull

__all__ = [
    "MAX_SHOWN_BODY",
    "binding_digest",
    "new_approval_id",
    "outcome_decision",
    "shown_request",
    "too_many_pending",
]

_DOMAIN = b"vertex_tools.approval.v1\x00"
MAX_SHOWN_BODY = 65_536
"""Bytes of the request body kept for ``vertex approvals show``."""


def new_approval_id() -> str:
    """``ap_`` and 16 random base32 characters."""
    return "ap_" + base64.b32encode(secrets.token_bytes(10)).decode().lower()


def _canonical_body(content_type: str, body: bytes) -> Any:
    """JSON re-serialised (key order and spacing do not matter; a repeated key, which
    an upstream may read either way, falls back to the raw bytes); anything else as
    its raw bytes (form pairs keep their order: the first or last of a repeated key
    is what an upstream reads)."""
    if not body:
        return ["empty"]
    kind = media_type(content_type)
    if kind == "application/json" or kind.endswith("+json"):
        try:
            return ["json", strict_json(body)]
        except Unreadable:
            pass
    return ["raw", body.hex()]


def binding_digest(
    *,
    token_id: str,
    upstream: str,
    method: str,
    path: str,
    query: str,
    content_type: str,
    body: bytes,
    headers: tuple[tuple[str, str], ...] = (),
) -> str:
    """The hex digest an approval is bound to: the query's exact bytes, the canonical
    body, and every forwarded header that can change what the request does."""
    shape = [
        token_id,
        upstream,
        method,
        path,
        query,
        _canonical_body(content_type, body),
        sorted(bound_headers(headers)),
    ]
    data = json.dumps(shape, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return blake3.blake3(_DOMAIN + data.encode()).hexdigest()


_UNBOUND_HEADERS = frozenset({"accept", "accept-language", "user-agent"})


def bound_headers(headers: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """The forwarded headers an approval binds and shows: all but those that only shape
    the answer's presentation (``Prefer``, ``Content-Profile``, ``Content-Type`` and the
    like change what the upstream does)."""
    return [(k.lower(), v) for k, v in headers if k.lower() not in _UNBOUND_HEADERS]


def shown_request(
    *,
    method: str,
    upstream: str,
    path: str,
    query: str,
    body: bytes,
    operation: str,
    risk: str,
    resource: str | None,
    amount: int | None,
    currency: str | None,
    request_id: str,
    headers: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """What a human sees of a held request (never a credential: none is in these parts)."""
    # A token the agent was tricked into sending is not kept in the store or shown.
    text = redact_tokens(body[:MAX_SHOWN_BODY].decode("utf-8", "replace"))
    shown: dict[str, Any] = {
        "method": method,
        "upstream": upstream,
        "path": path,
        "query": redact_tokens(query),
        "headers": [[k, redact_tokens(v)] for k, v in bound_headers(headers)],
        "body": text,
        "body_bytes": len(body),
        "body_truncated": len(body) > MAX_SHOWN_BODY,
        "operation": operation,
        "risk": risk,
        "request_id": request_id,
    }
    if resource is not None:
        shown["resource"] = resource
    if amount is not None:
        shown.update(amount=amount, currency=currency)
    return shown


def outcome_decision(held: Decision, record: ApprovalRecord) -> Decision | None:
    """What an approval's state means for this request: None to go ahead (it was used)."""
    if record.state is ApprovalState.USED:
        return None
    if record.state is ApprovalState.DENIED:
        who = f" by {record.decided_by}" if record.decided_by else ""
        note = f": {record.note}" if record.note else ""
        return Decision.deny(
            Reason.APPROVAL_DENIED,
            held.rule,
            f"a human denied this exact request{who} (approval {record.approval_id}){note}; "
            "do not retry it",
        )
    return Decision(
        Effect.APPROVE,
        Reason.APPROVAL_PENDING,
        held.rule,
        f"held for a human's approval as {record.approval_id}: {held.message}. "
        f"An operator can run `vertex approvals show {record.approval_id}` and then "
        f"`vertex approvals approve {record.approval_id}`; retry the same request after that",
    )


def too_many_pending(full: PendingApprovalsFull) -> Decision:
    """The refusal of a request that would be a new hold past its token's cap
    (``settings.max_pending_approvals``): nothing was held, so nothing can approve it."""
    return Decision.deny(
        Reason.TOO_MANY_PENDING_APPROVALS,
        "settings.max_pending_approvals",
        f"this token already has {full.pending} requests waiting for a human (at most "
        f"{full.limit}), so this one was not held. An operator decides the pending ones "
        "or lets them expire (`vertex approvals list`, or the console at /console); "
        "retry after that",
    )
