"""Versioned schema migrations for the PostgreSQL store.

``schema_version`` holds one row per applied migration. Migrations are
applied in order, each exactly once, by :func:`migrate` (``vertex init
--store URL``), under an advisory lock so two operators migrating at once
take turns. PostgreSQL's DDL is transactional: all pending migrations apply
in one transaction, or none does.

Every process that opens the database calls :func:`check_schema` first: a
database behind this version (never initialised, or not yet migrated) or
ahead of it (migrated by a newer vertex_tools) is refused, with the command
that fixes it. A broker never serves on a schema it was not written for.

Rules for adding a migration: append to ``MIGRATIONS`` with the next number;
never edit or reorder one that has shipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from vertex_tools.errors import StoreError, VertexError
from vertex_tools.store._pg import LOCK_MIGRATE, PgConnection, PgCursor, advisory_lock
from vertex_tools.store.dsn import PostgresDsn

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "Migration",
    "check_schema",
    "connect_checked",
    "migrate",
    "schema_version",
]


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: its number, what it does, and its SQL statements."""

    version: int
    description: str
    statements: tuple[str, ...]


_STATE_VAULT_AUDIT = (
    """CREATE TABLE tokens (
        token_id TEXT PRIMARY KEY, grant_name TEXT NOT NULL, public_key BYTEA NOT NULL,
        verifier BYTEA NOT NULL, created DOUBLE PRECISION NOT NULL,
        expires DOUBLE PRECISION NOT NULL, revoked DOUBLE PRECISION,
        last_used DOUBLE PRECISION)""",
    """CREATE TABLE nonces (
        token_id TEXT NOT NULL, nonce TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (token_id, nonce))""",
    "CREATE INDEX nonces_expires ON nonces (expires)",
    "CREATE TABLE rate_buckets (key TEXT PRIMARY KEY, tat DOUBLE PRECISION NOT NULL)",
    """CREATE TABLE spend (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, grant_name TEXT NOT NULL,
        currency TEXT NOT NULL, amount BIGINT NOT NULL, state TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL, settled DOUBLE PRECISION)""",
    "CREATE INDEX spend_window ON spend (grant_name, currency, created)",
    "CREATE TABLE reconciled (request_id TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL)",
    """CREATE TABLE approvals (
        approval_id TEXT PRIMARY KEY, token_id TEXT NOT NULL, grant_name TEXT NOT NULL,
        digest TEXT NOT NULL, state TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
        expires DOUBLE PRECISION NOT NULL, request TEXT NOT NULL, taint TEXT NOT NULL,
        decided DOUBLE PRECISION, decided_by TEXT, note TEXT, used DOUBLE PRECISION)""",
    "CREATE INDEX approvals_binding ON approvals (token_id, digest, created)",
    """CREATE TABLE idempotency_keys (
        token_id TEXT NOT NULL, key TEXT NOT NULL, digest TEXT NOT NULL,
        expires DOUBLE PRECISION NOT NULL, PRIMARY KEY (token_id, key))""",
    """CREATE TABLE vault_entries (
        name TEXT PRIMARY KEY, provider TEXT NOT NULL, key_id TEXT NOT NULL,
        nonce BYTEA NOT NULL, ciphertext BYTEA NOT NULL, created BIGINT NOT NULL,
        updated BIGINT NOT NULL)""",
    """CREATE TABLE audit_log (
        seq BIGINT PRIMARY KEY, prev_hash BYTEA NOT NULL, hash BYTEA NOT NULL,
        entry BYTEA NOT NULL)""",
    "CREATE TABLE audit_meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL)",
    # Stops accidents, not attackers (a superuser drops triggers); the chain and
    # checkpoints catch attackers.
    """CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$""",
    """CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
    """CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""",
    # log_id: 16 random bytes (gen_random_uuid is built in and cryptographically random).
    """INSERT INTO audit_meta (key, value) VALUES
        ('format', convert_to('vertex_tools.audit.v1', 'UTF8')),
        ('log_id', uuid_send(gen_random_uuid()))""",
)

_POLICIES = (
    """CREATE TABLE policies (
        version BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, digest TEXT NOT NULL,
        source BYTEA NOT NULL, pushed DOUBLE PRECISION NOT NULL, pushed_by TEXT NOT NULL)""",
)

# Hashes only: a login code or session id never reaches the database.
_CONSOLE = (
    """CREATE TABLE console_logins (
        code_hash TEXT PRIMARY KEY, issued_by TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
        expires DOUBLE PRECISION NOT NULL, used DOUBLE PRECISION)""",
    """CREATE TABLE console_sessions (
        session_hash TEXT PRIMARY KEY, operator TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
        expires DOUBLE PRECISION NOT NULL, ended DOUBLE PRECISION)""",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "state, vault and audit log tables", _STATE_VAULT_AUDIT),
    Migration(2, "shared policy versions (vertex policy push)", _POLICIES),
    Migration(3, "operator console login codes and sessions (vertex console)", _CONSOLE),
)
LATEST_VERSION = MIGRATIONS[-1].version


def schema_version(cur: PgCursor) -> int:
    """The highest applied migration, 0 for a database vertex_tools never initialised."""
    cur.execute("SELECT to_regclass('schema_version') IS NOT NULL")
    row = cur.fetchone()
    if row is None or not row[0]:
        return 0
    cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
    row = cur.fetchone()
    return int(str(row[0])) if row is not None else 0


def check_schema(cur: PgCursor, dsn: PostgresDsn, error: Callable[[str], VertexError]) -> None:
    """Raise ``error(...)`` naming the fix unless the database is at ``LATEST_VERSION``."""
    found = schema_version(cur)
    if found == LATEST_VERSION:
        return
    if found < LATEST_VERSION:
        state = "is not initialised" if found == 0 else f"is at schema version {found}"
        raise error(
            f"database {dsn.redacted} {state}; this vertex_tools needs schema version "
            f"{LATEST_VERSION}: run `vertex --store {dsn.redacted} init` (it migrates in place)"
        )
    raise error(
        f"database {dsn.redacted} is at schema version {found}, newer than this "
        f"vertex_tools knows ({LATEST_VERSION}): upgrade vertex_tools on this host"
    )


def connect_checked(dsn: PostgresDsn, *, what: str) -> PgConnection:
    """A connection to ``dsn`` whose schema version is this vertex_tools' (StoreError
    naming the fix otherwise; the connection is closed then)."""
    db = PgConnection(dsn, error=StoreError, what=what)
    try:
        with db.transaction() as cur:
            check_schema(cur, dsn, StoreError)
    except BaseException:
        db.close()
        raise
    return db


def migrate(
    cur: PgCursor, dsn: PostgresDsn, error: Callable[[str], VertexError], *, actor: str
) -> list[Migration]:
    """Apply every pending migration in order (in the caller's transaction); return them."""
    advisory_lock(cur, LOCK_MIGRATE, "schema")
    cur.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
        "description TEXT NOT NULL, applied DOUBLE PRECISION NOT NULL, applied_by TEXT NOT NULL)"
    )
    found = schema_version(cur)
    if found > LATEST_VERSION:
        check_schema(cur, dsn, error)  # raises, naming the fix
    applied: list[Migration] = []
    for migration in MIGRATIONS:
        if migration.version <= found:
            continue
        for statement in migration.statements:
            cur.execute(statement)
        cur.execute(
            "INSERT INTO schema_version (version, description, applied, applied_by) "
            "VALUES (%s, %s, %s, %s)",
            (migration.version, migration.description, time.time(), actor),
        )
        applied.append(migration)
    return applied
