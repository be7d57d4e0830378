"""Shared broker state: tokens, nonces, rate limits, spend, approvals, idempotency keys.

    base.py         the StateStore interface and the values that cross it
    sqlite.py       SqliteStore: the embedded default, one file
    postgres.py     PostgresStore: one database shared by broker replicas
    pg_vault.py     vault entries, pg_policy.py pushed policy versions (PostgreSQL)
    migrations.py   the PostgreSQL schema, as numbered migrations
    location.py     --store / VERTEX_STORE: which of the two a deployment uses
    dsn.py          a postgresql:// URL that never shows its password

The PostgreSQL modules import psycopg (the ``postgres`` extra) and are not
imported here, so SQLite users do not need it.
"""

from vertex_tools.store.base import (
    Admission,
    AdmissionResult,
    ApprovalRecord,
    ApprovalRequest,
    ApprovalState,
    ConsoleSession,
    IdempotencyClaim,
    PendingApprovalsFull,
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
    "ConsoleSession",
    "IdempotencyClaim",
    "PendingApprovalsFull",
    "RateKey",
    "SpendRequest",
    "SqliteStore",
    "StateStore",
]
