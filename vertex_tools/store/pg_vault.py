"""Vault entries in the shared PostgreSQL database (a :class:`VaultRows`).

A write transaction takes an advisory lock first, so writers exclude each other
across replicas as SQLite's ``BEGIN IMMEDIATE`` does: a key rotation's
re-encryption and a ``vault put`` on another host never interleave. Only
sealed rows cross this module; plaintext never reaches the database.

PostgreSQL has no ``secure_delete``: a replaced or deleted ciphertext stays in
dead row versions until VACUUM, and in every backup taken before. Rotate the
master key after a suspected database leak, as well as the provider secrets.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from vertex_tools.errors import StoreError
from vertex_tools.store._pg import LOCK_VAULT, PgCursor, advisory_lock
from vertex_tools.store.dsn import PostgresDsn
from vertex_tools.store.migrations import connect_checked
from vertex_tools.vault._rows import reseal_sql, upsert_sql

__all__ = ["PostgresVaultRows"]

_COLUMNS = ("name", "provider", "key_id", "nonce", "ciphertext", "created", "updated")
_SELECT = "SELECT name, provider, key_id, nonce, ciphertext, created, updated FROM vault_entries"


def _as_dict(row: tuple[object, ...]) -> dict[str, Any]:
    return dict(zip(_COLUMNS, row, strict=True))


class PostgresVaultRows:
    """The ``vault_entries`` table of the shared database."""

    def __init__(self, dsn: PostgresDsn) -> None:
        """Connect and check the schema version (StoreError naming the fix)."""
        self._dsn = dsn
        self._db = connect_checked(dsn, what="vault database")
        self._cur: PgCursor | None = None

    @property
    def location(self) -> str:
        """The database URL, password masked."""
        return self._dsn.redacted

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[None]:
        """One transaction; a writer holds the vault's advisory lock until it ends."""
        with self._db.transaction() as cur:
            if write:
                advisory_lock(cur, LOCK_VAULT, "vault_entries")
            self._cur = cur
            try:
                yield
            finally:
                self._cur = None

    def _cursor(self) -> PgCursor:
        if self._cur is None:
            raise StoreError("vault rows used outside a transaction (a bug in vertex_tools)")
        return self._cur

    def row(self, name: str) -> dict[str, Any] | None:
        """The entry ``name``, or None."""
        cur = self._cursor()
        cur.execute(_SELECT + " WHERE name = %s", (name,))
        found = cur.fetchone()
        return _as_dict(found) if found is not None else None

    def rows(self) -> list[dict[str, Any]]:
        """Every entry, sorted by name."""
        cur = self._cursor()
        cur.execute(_SELECT + " ORDER BY name")
        return [_as_dict(row) for row in cur.fetchall()]

    def upsert(
        self, name: str, provider: str, key_id: str, nonce: bytes, ciphertext: bytes, now: int
    ) -> None:
        """Insert, or replace all but ``created`` of an existing entry."""
        self._cursor().execute(
            upsert_sql("%s"), (name, provider, key_id, nonce, ciphertext, now, now)
        )

    def reseal(self, name: str, key_id: str, nonce: bytes, ciphertext: bytes) -> None:
        """Replace the sealed value of ``name``."""
        self._cursor().execute(reseal_sql("%s"), (key_id, nonce, ciphertext, name))

    def delete(self, name: str) -> int:
        """Delete ``name``; return how many rows went."""
        cur = self._cursor()
        cur.execute("DELETE FROM vault_entries WHERE name = %s", (name,))
        return cur.rowcount

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
