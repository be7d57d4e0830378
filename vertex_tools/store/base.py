"""The state store's interface and the values that cross it.

The broker's shared state (tokens, nonces, rate limits, spend) lives behind
this one interface so SQLite (one broker) and PostgreSQL (replicas) can serve
it alike. :meth:`StateStore.admit` runs every stateful check of a request in
one transaction, so concurrent requests can never together pass a ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from vertex_tools.decision import Reason
from vertex_tools.policy.durations import Rate
from vertex_tools.tokens import TokenRecord

__all__ = ["Admission", "AdmissionResult", "RateKey", "SpendRequest", "StateStore"]


@dataclass(frozen=True, slots=True)
class RateKey:
    """A rate limit bucket: ``key`` such as ``token:tk_...`` and the policy rule it enforces."""

    key: str
    rate: Rate
    rule: str


@dataclass(frozen=True, slots=True)
class SpendRequest:
    """Reserve ``amount`` against a rolling 24-hour ceiling of ``per_day`` (None: no window)."""

    grant: str
    currency: str
    amount: int
    per_day: int | None
    rule: str


@dataclass(frozen=True, slots=True)
class Admission:
    """Everything stateful about one request, checked in one transaction."""

    token_id: str
    now: float
    nonce: str | None = None
    nonce_expires: float = 0.0
    rates: tuple[RateKey, ...] = ()
    spend: SpendRequest | None = None


@dataclass(frozen=True, slots=True)
class AdmissionResult:
    """``reason`` is None when admitted; ``reservation`` names the spend held for the call."""

    reason: Reason | None = None
    rule: str = ""
    message: str = ""
    retry_after: float | None = None
    reservation: int | None = None
    details: dict[str, int] = field(default_factory=dict)

    @property
    def admitted(self) -> bool:
        """True when every stateful check passed."""
        return self.reason is None


class StateStore(Protocol):
    """Shared broker state. Implementations raise only :class:`vertex_tools.errors.StoreError`."""

    def add_token(self, record: TokenRecord) -> None:
        """Store a newly issued token."""

    def get_token(self, token_id: str) -> TokenRecord | None:
        """The token's record, or None."""

    def list_tokens(self) -> list[TokenRecord]:
        """Every token, newest first."""

    def revoke_token(self, token_id: str, now: float) -> TokenRecord | None:
        """Mark revoked (idempotent); None when there is no such token."""

    def admit(self, admission: Admission) -> AdmissionResult:
        """Consume the nonce, check and take rate, reserve spend: all or nothing."""

    def settle(self, reservation: int, *, commit: bool, now: float) -> None:
        """Commit a spend reservation (the upstream succeeded) or release it."""

    def spend_used(self, grant: str, currency: str, since: float) -> int:
        """Reserved plus committed spend since ``since``."""

    def close(self) -> None:
        """Release connections."""
