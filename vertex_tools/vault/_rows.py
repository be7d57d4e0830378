"""Where sealed vault entries are kept: the seam between the vault and its database.

The vault seals and opens; a :class:`VaultRows` only stores what it is given
(``name, provider, key_id, nonce, ciphertext, created, updated``) and never
sees plaintext. :class:`SqliteVaultRows` is the embedded default (a table in
``vertex.db``); ``vertex_tools.store.pg_vault.PostgresVaultRows`` keeps the
same table in the shared PostgreSQL database.

Every call but ``close`` happens inside ``transaction()``; a write
transaction excludes every other writer (in any process) until it commits, so
a key rotation's re-encryption and a concurrent ``put`` never interleave.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from vertex_tools.errors import StoreError

__all__ = ["SqliteVaultRows", "VaultRows"]

_BUSY_TIMEOUT_MS = 5000
_UPSERT = (
    "INSERT INTO vault_entries (name, provider, key_id, nonce, ciphertext, created, updated) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}) "
    "ON CONFLICT (name) DO UPDATE SET provider = excluded.provider, "
    "key_id = excluded.key_id, nonce = excluded.nonce, "
    "ciphertext = excluded.ciphertext, updated = excluded.updated"
)
_RESEAL = "UPDATE vault_entries SET key_id = {p}, nonce = {p}, ciphertext = {p} WHERE name = {p}"
# The table as sqlite-utils created it (``table().create(..., pk="name")``); written out
# so the broker, which opens the vault at start-up, need not import sqlite-utils.
_CREATE = """CREATE TABLE IF NOT EXISTS "vault_entries" (
   "name" TEXT PRIMARY KEY NOT NULL,
   "provider" TEXT NOT NULL,
   "key_id" TEXT NOT NULL,
   "nonce" BLOB NOT NULL,
   "ciphertext" BLOB NOT NULL,
   "created" INTEGER NOT NULL,
   "updated" INTEGER NOT NULL
)"""


def upsert_sql(placeholder: str) -> str:
    """The insert-or-replace statement, for a driver's placeholder style."""
    return _UPSERT.format(p=placeholder)


def reseal_sql(placeholder: str) -> str:
    """The re-encryption update, for a driver's placeholder style."""
    return _RESEAL.format(p=placeholder)


class VaultRows(Protocol):
    """Storage of sealed vault entries (rows as dicts keyed by column name)."""

    @property
    def location(self) -> str:
        """Where the rows are, for messages (never a password)."""

    def transaction(self, *, write: bool) -> AbstractContextManager[None]:
        """One transaction; a write one excludes every other writer until it ends."""

    def row(self, name: str) -> dict[str, Any] | None:
        """The entry ``name``, or None."""

    def rows(self) -> list[dict[str, Any]]:
        """Every entry, sorted by name."""

    def upsert(
        self, name: str, provider: str, key_id: str, nonce: bytes, ciphertext: bytes, now: int
    ) -> None:
        """Insert, or replace all but ``created`` of an existing entry."""

    def reseal(self, name: str, key_id: str, nonce: bytes, ciphertext: bytes) -> None:
        """Replace the sealed value of ``name`` (key rotation)."""

    def delete(self, name: str) -> int:
        """Delete ``name``; return how many rows went (0 or 1)."""

    def close(self) -> None:
        """Release the connection."""


class SqliteVaultRows:
    """The ``vault_entries`` table of a SQLite file; WAL, 5 s busy timeout."""

    def __init__(self, db_path: Path) -> None:
        """Open (creating if needed) the database and the table."""
        self._path = db_path
        try:
            # isolation_level=None: no implicit BEGIN; transaction() begins explicitly.
            conn = sqlite3.connect(
                str(db_path),
                timeout=_BUSY_TIMEOUT_MS / 1000,
                check_same_thread=False,
                isolation_level=None,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open vault database {db_path}: {exc}") from exc
        self._conn = conn
        try:
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            # FULL: a rotation commit must be on disk before the key file is replaced.
            conn.execute("PRAGMA synchronous = FULL")
            # Overwrite freed pages, so ciphertexts under a retired key do not linger.
            conn.execute("PRAGMA secure_delete = ON")
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = wal")
            conn.execute(_CREATE)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot open vault database {db_path}: {exc}") from exc

    @property
    def location(self) -> str:
        """The database file."""
        return str(self._path)

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` for writers (no lock upgrade can fail half-way), else
        a plain ``BEGIN`` (one snapshot); sqlite3 errors become StoreError."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if conn.in_transaction:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"vault database {self._path}: {exc}") from exc

    def row(self, name: str) -> dict[str, Any] | None:
        """The entry ``name``, or None."""
        found = self._query("SELECT * FROM vault_entries WHERE name = ?", (name,))
        return found[0] if found else None

    def rows(self) -> list[dict[str, Any]]:
        """Every entry, sorted by name."""
        return self._query("SELECT * FROM vault_entries ORDER BY name", ())

    def _query(self, sql: str, params: tuple[str, ...]) -> list[dict[str, Any]]:
        cursor = self._conn.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def upsert(
        self, name: str, provider: str, key_id: str, nonce: bytes, ciphertext: bytes, now: int
    ) -> None:
        """Insert, or replace all but ``created`` of an existing entry."""
        self._conn.execute(upsert_sql("?"), (name, provider, key_id, nonce, ciphertext, now, now))

    def reseal(self, name: str, key_id: str, nonce: bytes, ciphertext: bytes) -> None:
        """Replace the sealed value of ``name``."""
        self._conn.execute(reseal_sql("?"), (key_id, nonce, ciphertext, name))

    def delete(self, name: str) -> int:
        """Delete ``name``; return how many rows went."""
        cursor = self._conn.execute("DELETE FROM vault_entries WHERE name = ?", (name,))
        return int(cursor.rowcount)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
