"""Step 1's reads on the event loop, for a SQLite state database (``vertex.db``).

Authenticating a call reads one token row, and forwarding it needs the
upstream's vault entry. Sending both reads to the database thread cost a trip
there and back per call (a queue, a thread switch and a wake-up of the loop),
more than the reads themselves: a primary-key look-up in a small file the OS
has cached. So with SQLite the loop reads them itself, through its own
connection that only reads:

* WAL mode: a reader never waits for a writer, and each statement is its own
  read transaction (autocommit, every result read to the end), so it sees
  every commit made before it started, a revocation included;
* ``timeout=0``: when SQLite would wait for a lock (a WAL recovery, a
  database not in WAL mode), the read fails at once instead, and the caller
  does the whole step on the database thread as before (``Fallback``); the
  loop never sleeps on a busy database;
* ``PRAGMA query_only``: this connection can never write.

The vault entry is not decrypted on the loop: each opened entry is kept in
memory with the stored row it came from (key id, nonce, ciphertext), and is
used again only while the row is byte for byte the same. A changed row (a
``vault put``, a re-encryption under a new master key), a missing one, or
one never opened goes to the database thread, which opens it with the vault
(and reloads the keyring if the master key changed). A value is kept only if
the row read on the loop before and after that trip is the same, so no value
is ever paired with a row it did not come from. The broker holds these
values in memory anyway (to inject them, and to scrub them from answers).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from vertex_tools.errors import StoreError
from vertex_tools.store.rows import token_from_row
from vertex_tools.tokens import TokenRecord
from vertex_tools.vault import SecretValue

__all__ = ["Fallback", "LoopReader"]

_ROW_BY_ID = (
    "SELECT token_id, grant_name, public_key, verifier, created, expires, revoked, last_used "
    "FROM tokens WHERE token_id = ?"
)
_VAULT_ROW = "SELECT key_id, nonce, ciphertext FROM vault_entries WHERE name = ?"
_ROW_AND_VAULT = (
    "SELECT t.token_id, t.grant_name, t.public_key, t.verifier, t.created, t.expires, "
    "t.revoked, t.last_used, v.key_id, v.nonce, v.ciphertext "
    "FROM tokens AS t LEFT JOIN vault_entries AS v ON v.name = ? WHERE t.token_id = ?"
)
_MAX_SECRETS = 256

RowStamp = tuple[object, ...]


class Fallback(Exception):
    """The read could not be done at once: do it on the database thread."""


class LoopReader:
    """Token rows and vault-row stamps read on the loop; opened vault entries remembered."""

    def __init__(self, path: Path) -> None:
        try:
            conn = sqlite3.connect(
                str(path), timeout=0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"state database {path}: {exc}") from exc
        try:
            conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"state database {path}: {exc}") from exc
        self._conn = conn
        self._secrets: dict[str, tuple[RowStamp, SecretValue]] = {}

    def token(self, token_id: str) -> TokenRecord | None:
        """The token's record, or None; ``Fallback`` if SQLite would have to wait."""
        rows = self._read(_ROW_BY_ID, token_id)
        return token_from_row(rows[0]) if rows else None

    def token_and_secret(
        self, token_id: str, name: str | None
    ) -> tuple[TokenRecord | None, SecretValue | None]:
        """:meth:`token`, and the value of vault entry ``name`` (None: no upstream) if it
        was opened from the row stored now (None: not remembered, or the row changed,
        and then it is forgotten); one read. ``Fallback`` if SQLite would have to wait."""
        kept = self._secrets.get(name) if name is not None else None
        if name is None or kept is None:
            return self.token(token_id), None
        rows = self._read(_ROW_AND_VAULT, name, token_id)
        if not rows:
            return None, None
        row = rows[0]
        stamp = None if row[8] is None else row[8:]  # key_id is NOT NULL in a stored row
        if stamp != kept[0]:
            del self._secrets[name]
            return token_from_row(row[:8]), None
        return token_from_row(row[:8]), kept[1]

    def stamp(self, name: str) -> RowStamp | None:
        """What the vault entry ``name`` is stored as now (None: no such entry)."""
        rows = self._read(_VAULT_ROW, name)
        return rows[0] if rows else None

    def keep(self, name: str, before: RowStamp | None, value: SecretValue) -> None:
        """Remember ``value``, opened on the database thread, if the row read before that
        (``before``) is still the row stored now."""
        if before is None:
            return
        try:
            after = self.stamp(name)
        except Fallback:
            return
        if after != before:
            return
        if len(self._secrets) >= _MAX_SECRETS:
            self._secrets.clear()
        self._secrets[name] = (before, value)

    def forget(self) -> None:
        """Drop every remembered value."""
        self._secrets.clear()

    def close(self) -> None:
        self._secrets.clear()
        self._conn.close()

    def _read(self, sql: str, *keys: str) -> list[tuple[object, ...]]:
        try:
            # fetchall: the statement is finished, so no read transaction stays open.
            return list(self._conn.execute(sql, keys).fetchall())
        except sqlite3.Error as exc:
            raise Fallback(str(exc)) from exc
