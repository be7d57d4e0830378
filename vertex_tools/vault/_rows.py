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

from sqlite_utils import Database

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
            conn = sqlite3.connect(
                str(db_path), timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open vault database {db_path}: {exc}") from exc
        try:
            self._db = Database(conn, execute_plugins=False)
            self._db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            # FULL: a rotation commit must be on disk before the key file is replaced.
            self._db.execute("PRAGMA synchronous = FULL")
            # Overwrite freed pages, so ciphertexts under a retired key do not linger.
            self._db.execute("PRAGMA secure_delete = ON")
            self._db.enable_wal()
            columns = {
                "name": str,
                "provider": str,
                "key_id": str,
                "nonce": bytes,
                "ciphertext": bytes,
                "created": int,
                "updated": int,
            }
            self._db.table("vault_entries").create(
                columns, pk="name", not_null=set(columns), if_not_exists=True
            )
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
        try:
            self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield
            except BaseException:
                self._db.rollback()
                raise
            self._db.commit()
        except sqlite3.Error as exc:
            self._db.rollback()
            raise StoreError(f"vault database {self._path}: {exc}") from exc

    def row(self, name: str) -> dict[str, Any] | None:
        """The entry ``name``, or None."""
        found = list(self._db.query("SELECT * FROM vault_entries WHERE name = ?", (name,)))
        return found[0] if found else None

    def rows(self) -> list[dict[str, Any]]:
        """Every entry, sorted by name."""
        return list(self._db.query("SELECT * FROM vault_entries ORDER BY name"))

    def upsert(
        self, name: str, provider: str, key_id: str, nonce: bytes, ciphertext: bytes, now: int
    ) -> None:
        """Insert, or replace all but ``created`` of an existing entry."""
        self._db.execute(upsert_sql("?"), (name, provider, key_id, nonce, ciphertext, now, now))

    def reseal(self, name: str, key_id: str, nonce: bytes, ciphertext: bytes) -> None:
        """Replace the sealed value of ``name``."""
        self._db.execute(reseal_sql("?"), (key_id, nonce, ciphertext, name))

    def delete(self, name: str) -> int:
        """Delete ``name``; return how many rows went."""
        cursor = self._db.execute("DELETE FROM vault_entries WHERE name = ?", (name,))
        return int(cursor.rowcount)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
