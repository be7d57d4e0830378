"""The state store's interface and the values that cross it.

The broker's shared state (tokens, nonces, rate limits, spend) lives behind
this one interface so SQLite (one broker) and PostgreSQL (replicas) can serve
it alike. :meth:`StateStore.admit` runs every stateful check of a request in
one transaction, so concurrent requests can never together pass a ceiling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from vertex_tools.decision import Reason
from vertex_tools.policy.durations import Rate
from vertex_tools.tokens import TokenRecord

__all__ = [
    "Admission",
    "AdmissionResult",
    "ApprovalRecord",
    "ApprovalRequest",
    "ApprovalState",
    "ConsoleSession",
    "IdempotencyClaim",
    "PendingApprovalsFull",
    "RateKey",
    "SpendRequest",
    "StateStore",
]


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
    nonce_logged: bool = False
    """The caller promises that a durable audit entry naming this token and nonce is
    committed before anything the request authorizes leaves the broker or is answered
    (the broker's intent entry), and that the nonce is restored from those entries at
    start. The SQLite store may then commit the nonce without waiting for the disk
    (``SqliteStore.admit_many``, docs/durability.md). False: the nonce waits for the disk."""


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


class ApprovalState(StrEnum):
    """Where a held request stands. Only ``pending`` can be decided; only ``approved``
    can be used, once."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    USED = "used"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """A request the broker holds for a human, bound to its exact content by ``digest``
    (BLAKE3 over method, upstream, path, query and canonical body)."""

    approval_id: str
    token_id: str
    grant: str
    digest: str
    created: float
    expires: float
    request: Mapping[str, Any]
    """What ``vertex approvals show`` displays: method, upstream, path, query, body,
    operation, amount. JSON-serialisable; never a secret or a token."""
    taint: tuple[Mapping[str, Any], ...] = ()
    """The tainted arguments and the untrusted source each came from."""


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """An approval as stored."""

    approval_id: str
    token_id: str
    grant: str
    digest: str
    state: ApprovalState
    created: float
    expires: float
    request: Mapping[str, Any]
    taint: tuple[Mapping[str, Any], ...]
    decided: float | None = None
    decided_by: str | None = None
    note: str | None = None
    used: float | None = None


class PendingApprovalsFull(Exception):
    """:meth:`StateStore.approval_gate` held nothing: the request would be a new hold,
    and its token already has ``limit`` pending, unexpired approvals.

    Not a :class:`~vertex_tools.errors.StoreError`: the store works, and the caller
    refuses the request (``too_many_pending_approvals``) until an operator decides the
    pending ones or they expire. A cap per token keeps a manipulated agent from burying
    the approval that matters under decoys, and the table from growing without bound.
    """

    def __init__(self, token_id: str, pending: int, limit: int) -> None:
        super().__init__(f"token {token_id} has {pending} pending approvals (at most {limit})")
        self.token_id = token_id
        self.pending = pending
        self.limit = limit


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """An operator's signed-in console session. The store keeps only a hash of the
    session id (and of each login code): a copy of the database signs nobody in."""

    operator: str
    """Who ran ``vertex console`` to make the login code (an OS user name)."""
    created: float
    expires: float


class IdempotencyClaim(StrEnum):
    """What an agent's idempotency key means for this request."""

    NEW = "new"
    """First use of the key: recorded with the request's digest."""
    SAME = "same"
    """The key was used before for the same request: a retry, forward it with the key."""
    CONFLICT = "conflict"
    """The key was used before for a different request: refuse before forwarding."""


class StateStore(Protocol):
    """Shared broker state. Implementations raise only :class:`vertex_tools.errors.StoreError`
    (and the answers documented as exceptions: :class:`vertex_tools.errors.ApprovalError`,
    :class:`PendingApprovalsFull`)."""

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

    def admit_many(self, admissions: Sequence[Admission]) -> list[AdmissionResult]:
        """``admit`` for each, in order, with the same results as one at a time
        (the broker's group commit: one durable commit for many requests where
        the database allows it)."""

    def settle(self, reservation: int, *, commit: bool, now: float) -> None:
        """Commit a spend reservation (the upstream succeeded) or release it."""

    def spend_used(self, grant: str, currency: str, since: float) -> int:
        """Reserved plus committed spend since ``since``."""

    def claim_orphan(self, request_id: str, now: float) -> bool:
        """True for exactly one caller per request id: who records its orphan outcome."""

    def prune(self, now: float) -> None:
        """Drop expired nonces, idempotency keys and old spend rows."""

    # approvals: a held request, decided by a human, used once

    def approval_gate(
        self, request: ApprovalRequest, now: float, *, max_pending: int
    ) -> ApprovalRecord:
        """In one transaction, for ``request.token_id`` and ``request.digest``:
        an unexpired ``approved`` approval is marked ``used`` and returned (state USED:
        this call may go ahead); else an unexpired ``pending`` or ``denied`` one is
        returned as it is; else, when the token already has ``max_pending`` pending,
        unexpired approvals, nothing is stored and :class:`PendingApprovalsFull` is
        raised; else ``request`` is stored as ``pending`` and returned.
        Two concurrent calls can never both get USED for one approval, nor together
        hold more than ``max_pending`` for one token."""

    def decide_approval(
        self, approval_id: str, *, approve: bool, now: float, by: str, note: str | None
    ) -> ApprovalRecord:
        """pending -> approved or denied. :class:`vertex_tools.errors.ApprovalError` when
        unknown, expired or already decided."""

    def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        """One approval (state EXPIRED when past ``expires`` and not used), or None."""

    def list_approvals(self, state: ApprovalState | None = None) -> list[ApprovalRecord]:
        """Approvals, newest first, optionally only those in ``state``."""

    # idempotency keys an agent (an official SDK) sent

    def claim_idempotency(
        self, token_id: str, key: str, digest: str, now: float, ttl: float
    ) -> IdempotencyClaim:
        """Record ``key`` of ``token_id`` for the request ``digest`` (kept ``ttl`` seconds)."""

    # the operator console (vertex_tools.console): hashes only, never a code or session id

    def add_console_login(
        self, code_hash: str, *, issued_by: str, created: float, expires: float
    ) -> None:
        """Store a one-time login code's hash (``vertex console``)."""

    def redeem_console_login(
        self, code_hash: str, session_hash: str, *, now: float, expires: float
    ) -> ConsoleSession | None:
        """In one transaction: mark an unused, unexpired login code used and start a
        session for it. None when the code is unknown, used or expired; two concurrent
        redemptions of one code can never both start a session."""

    def get_console_session(self, session_hash: str, now: float) -> ConsoleSession | None:
        """The session, or None when unknown, ended or expired."""

    def end_console_session(self, session_hash: str, now: float) -> None:
        """Sign out (idempotent)."""

    def close(self) -> None:
        """Release connections."""
