"""Decisions: the value every check in the broker returns.

A decision is never a bare bool. It carries the effect, a stable reason code
that programs can match on, the rule that decided (a policy path such as
``grants.echo-writer.allow[1]``) and a message for humans that names the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Decision", "Effect", "Reason"]


class Effect(StrEnum):
    """What the broker does with a request."""

    ALLOW = "allow"
    DENY = "deny"
    APPROVE = "approve"  # hold for a human approval bound to this exact request


class Reason(StrEnum):
    """Stable reason codes. Append only: recorded sessions and audit entries name them."""

    # allow
    ALLOWED = "allowed"
    # authentication (HTTP 401)
    TOKEN_MISSING = "token_missing"
    TOKEN_MALFORMED = "token_malformed"
    TOKEN_UNKNOWN = "token_unknown"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_REVOKED = "token_revoked"
    BAD_SIGNATURE = "bad_signature"
    STALE_TIMESTAMP = "stale_timestamp"
    REPLAYED_REQUEST = "replayed_request"
    BEARER_NOT_ALLOWED = "bearer_not_allowed"
    # policy (HTTP 403)
    GRANT_UNKNOWN = "grant_unknown"
    UPSTREAM_MISMATCH = "upstream_mismatch"
    NOT_ALLOWED = "not_allowed"
    UNKNOWN_OPERATION = "unknown_operation"
    RESOURCE_NOT_ALLOWED = "resource_not_allowed"
    MISSING_FILTER = "missing_filter"
    AMOUNT_UNAVAILABLE = "amount_unavailable"
    BAD_PATH = "bad_path"
    BAD_REQUEST = "bad_request"
    REQUEST_TOO_LARGE = "request_too_large"
    REQUEST_TIMEOUT = "request_timeout"
    TOKEN_IN_URL = "token_in_url"
    TOKEN_IN_BODY = "token_in_body"
    AMOUNT_MISSING = "amount_missing"
    AMOUNT_INVALID = "amount_invalid"
    CURRENCY_MISMATCH = "currency_mismatch"
    SPEND_PER_CALL_EXCEEDED = "spend_per_call_exceeded"
    SPEND_WINDOW_EXCEEDED = "spend_window_exceeded"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    # taint and approval (HTTP 403; the approve effect holds the request)
    TAINTED_ARGUMENT = "tainted_argument"
    UNTRUSTED_CONTEXT = "untrusted_context"
    APPROVAL_PENDING = "approval_pending"
    APPROVAL_DENIED = "approval_denied"
    TAINT_REPORT_INVALID = "taint_report_invalid"
    TOO_MANY_PENDING_APPROVALS = "too_many_pending_approvals"
    # rate (HTTP 429)
    RATE_LIMITED = "rate_limited"
    # broker faults (HTTP 502/503/504)
    AUDIT_UNAVAILABLE = "audit_unavailable"
    SECRET_UNAVAILABLE = "secret_unavailable"
    UPSTREAM_BLOCKED = "upstream_blocked"
    UPSTREAM_FAILED = "upstream_failed"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    INTERNAL_ERROR = "internal_error"
    ORPHANED = "orphaned"


_AUTH_REASONS = frozenset(
    {
        Reason.TOKEN_MISSING,
        Reason.TOKEN_MALFORMED,
        Reason.TOKEN_UNKNOWN,
        Reason.TOKEN_EXPIRED,
        Reason.TOKEN_REVOKED,
        Reason.BAD_SIGNATURE,
        Reason.STALE_TIMESTAMP,
        Reason.REPLAYED_REQUEST,
        Reason.BEARER_NOT_ALLOWED,
    }
)
_FAULT_STATUS = {
    Reason.AUDIT_UNAVAILABLE: 503,
    Reason.SECRET_UNAVAILABLE: 503,
    Reason.UPSTREAM_BLOCKED: 502,
    Reason.UPSTREAM_FAILED: 502,
    Reason.UPSTREAM_TIMEOUT: 504,
    Reason.INTERNAL_ERROR: 500,
}


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of a check: effect, reason code, deciding rule, human message."""

    effect: Effect
    reason: Reason
    rule: str
    message: str

    @classmethod
    def allow(cls, rule: str, message: str = "allowed by policy") -> Decision:
        """An allow decision naming the rule that allowed it."""
        return cls(Effect.ALLOW, Reason.ALLOWED, rule, message)

    @classmethod
    def deny(cls, reason: Reason, rule: str, message: str) -> Decision:
        """A deny decision; ``message`` should say what to change."""
        return cls(Effect.DENY, reason, rule, message)

    @property
    def allowed(self) -> bool:
        """True only for the allow effect."""
        return self.effect is Effect.ALLOW

    @property
    def http_status(self) -> int:
        """The status the broker answers a refused request with."""
        if self.effect is Effect.ALLOW:
            return 200
        if self.reason in _AUTH_REASONS:
            return 401
        if self.reason is Reason.RATE_LIMITED:
            return 429
        # A held request is refused for now (403, effect "approve"): an SDK must raise,
        # never mistake a 2xx for a done call. The agent retries once a human approved.
        if self.reason is Reason.REQUEST_TOO_LARGE:
            return 413
        if self.reason is Reason.REQUEST_TIMEOUT:
            return 408
        return _FAULT_STATUS.get(self.reason, 403)

    def to_json(self) -> dict[str, Any]:
        """The JSON object the broker sends with a refusal and records in the audit log."""
        return {
            "effect": self.effect.value,
            "reason": self.reason.value,
            "rule": self.rule,
            "message": self.message,
        }

    @classmethod
    def from_json(cls, data: object) -> Decision:
        """Parse a decision object; raises ``ValueError`` on anything malformed."""
        if not isinstance(data, dict):
            raise ValueError("decision must be a JSON object")
        try:
            return cls(
                Effect(data["effect"]),
                Reason(data["reason"]),
                str(data["rule"]),
                str(data["message"]),
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(f"malformed decision: {exc}") from exc
