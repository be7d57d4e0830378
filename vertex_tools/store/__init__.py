"""Shared broker state: tokens, nonces, rate limits, spend, approvals, idempotency keys."""

from vertex_tools.store.base import (
    Admission,
    AdmissionResult,
    ApprovalRecord,
    ApprovalRequest,
    ApprovalState,
    IdempotencyClaim,
    RateKey,
    SpendRequest,
    StateStore,
)
from vertex_tools.store.sqlite import SqliteStore

__all__ = [
    "Admission",
    "AdmissionResult",
    "ApprovalRecord",
    "ApprovalRequest",
    "ApprovalState",
    "IdempotencyClaim",
    "RateKey",
    "SpendRequest",
    "SqliteStore",
    "StateStore",
]
