"""The audit log file: one SQLite database, appended to under ``BEGIN IMMEDIATE``.

Schema (made with sqlite-utils when the file is created)::

    audit_log(seq INTEGER PRIMARY KEY, prev_hash BLOB NOT NULL,
              hash BLOB NOT NULL, entry BLOB NOT NULL)
    meta(key TEXT PRIMARY KEY, value BLOB NOT NULL)   -- "format", "log_id"

Why each setting:

- WAL: readers (``vertex audit verify``) never block the broker's appends.
- ``synchronous=FULL``: a committed entry survives power loss; the intent
  record must exist before the request leaves.
- ``BEGIN IMMEDIATE`` before reading the head: the write lock is held from the
  moment the head is read until the new rows are committed, so two appenders in
  different processes can never both extend the same head and fork the chain.
  The loser waits up to ``busy_timeout_s`` and then gets ``AuditUnavailable``.
- Triggers refuse UPDATE and DELETE on ``audit_log``. They stop accidents, not
  attackers (who can drop them); the hash chain and checkpoints catch attackers.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from vertex_tools._closing import Closing
from vertex_tools.audit._backend import RawRow, Scan, chain_rows, now_us, written_records
from vertex_tools.audit._entry import (
    GENESIS_HASH,
    HASH_SIZE,
    AuditRecord,
    EntryKind,
    encode_data,
    record_from_row,
)
from vertex_tools.errors import AuditIntegrityError, AuditUnavailable

__all__ = ["LOG_FORMAT", "AuditLog"]

LOG_FORMAT = "vertex_tools.audit.v1"
LOG_ID_SIZE = 16
_PAGE = 1000  # rows per query in records(): bounded memory, few round trips

_SELECT_ROWS = "SELECT seq, prev_hash, hash, entry FROM audit_log"
_INSERT_ROW = "INSERT INTO audit_log (seq, prev_hash, hash, entry) VALUES (?, ?, ?, ?)"
_TRIGGERS = (
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log"
    " BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log"
    " BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
)


def _describe(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None)
    return f"{exc} ({name})" if name else str(exc)


def _end_transaction(conn: sqlite3.Connection) -> None:
    """Roll back whatever transaction is still open on ``conn`` (for ``finally``).

    If even the rollback fails the connection is in an unknown state, so it is
    closed: SQLite then discards the transaction, and every later call fails
    with ``AuditUnavailable`` instead of writing on top of that state.
    """
    if not conn.in_transaction:
        return
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        conn.close()


class AuditLog(Closing):
    """The append-only, hash-chained audit log in one SQLite file (``audit.db``).

    Not thread-safe: use one instance per thread (``AsyncAuditWriter`` owns its
    own). Several instances, in any number of processes, may append to the same
    file at once; the chain stays linear.

    ``create=False`` refuses a missing file instead of making one.
    ``read_only=True`` opens the file with SQLite's ``mode=ro``: nothing can be
    written (appends raise ``AuditUnavailable``), which is what verification and
    inspection should use.
    """

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout_s: float = 5.0,
        create: bool = True,
        read_only: bool = False,
    ) -> None:
        """Open (and with ``create``, make) the log at ``path``.

        Raises ``AuditUnavailable`` naming the file if it cannot be opened, or
        is not an audit log of a format this version knows.
        """
        if not (math.isfinite(busy_timeout_s) and busy_timeout_s >= 0):
            raise ValueError(f"busy_timeout_s must be a finite number >= 0, not {busy_timeout_s}")
        self._path = Path(path)
        self._clock = clock
        self._busy_timeout_s = busy_timeout_s
        create = create and not read_only
        mode = "ro" if read_only else "rwc" if create else "rw"
        # A URI, so that mode=rw refuses a missing file rather than creating an
        # empty one, and mode=ro is enforced by SQLite itself.
        uri = f"file:{quote(str(self._path.absolute()))}?mode={mode}"
        try:
            self._conn = sqlite3.connect(
                uri, uri=True, timeout=busy_timeout_s, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise AuditUnavailable(f"cannot open audit log {self._path}: {_describe(exc)}") from exc
        try:
            self._log_id = self._prepare(create=create, read_only=read_only)
        except BaseException:
            self._conn.close()
            raise

    # -- opening ------------------------------------------------------------

    def _tables(self) -> set[str]:
        rows = self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}

    def _prepare(self, *, create: bool, read_only: bool) -> bytes:
        conn = self._conn
        try:
            conn.execute("PRAGMA synchronous = FULL")
            if not read_only:
                self._use_wal()
            # Checked before taking the write lock so that opening an existing
            # log never waits for an appender; checked again under the lock
            # because another process may be creating the same file right now.
            if create and not self._tables():
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if not self._tables():
                        self._create_schema()
                    conn.execute("COMMIT")
                finally:
                    _end_transaction(conn)
            tables = self._tables()
            if not {"audit_log", "meta"} <= tables:
                found = ", ".join(sorted(tables)) or "none"
                raise AuditUnavailable(
                    f"{self._path} is not a vertex_tools audit log (tables: {found})"
                )
            meta: dict[Any, Any] = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as exc:
            raise AuditUnavailable(f"cannot open audit log {self._path}: {_describe(exc)}") from exc
        if meta.get("format") != LOG_FORMAT:
            raise AuditUnavailable(
                f"audit log {self._path} has format {meta.get('format')!r};"
                f" this version reads {LOG_FORMAT!r}"
            )
        log_id = meta.get("log_id")
        if type(log_id) is not bytes or len(log_id) != LOG_ID_SIZE:
            raise AuditUnavailable(f"audit log {self._path} has no valid log_id in its meta table")
        return log_id

    def _use_wal(self) -> None:
        """Switch the file to WAL, waiting out other processes opening it at the same time.

        SQLite does not call the busy handler while changing the journal mode,
        so when two processes create the same new file at once, one of them gets
        SQLITE_BUSY at once; retry it here, within the same busy timeout.
        """
        deadline = time.monotonic() + self._busy_timeout_s
        delay = 0.001
        while True:
            try:
                journal = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
                if journal != "wal":
                    journal = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(2 * delay, 0.05)
        if journal != "wal":
            raise AuditUnavailable(
                f"audit log {self._path} cannot use WAL (journal_mode is {journal})"
            )

    def _create_schema(self) -> None:
        import sqlite_utils  # here: only a new file needs it, and it is slow to import

        db = sqlite_utils.Database(self._conn, execute_plugins=False, recursive_triggers=False)
        db.table("audit_log").create(
            {"seq": int, "prev_hash": bytes, "hash": bytes, "entry": bytes},
            pk="seq",
            not_null=["prev_hash", "hash", "entry"],
        )
        db.table("meta").create({"key": str, "value": bytes}, pk="key", not_null=["value"])
        for trigger in _TRIGGERS:
            self._conn.execute(trigger)
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES ('format', ?), ('log_id', ?)",
            (LOG_FORMAT, os.urandom(LOG_ID_SIZE)),
        )

    # -- appending ----------------------------------------------------------

    def append(self, kind: EntryKind, data: Mapping[str, Any]) -> AuditRecord:
        """Append one entry in its own transaction and return it as stored.

        ``TypeError``/``ValueError`` for data that is not plain JSON (floats
        included) are raised before anything is locked or written.
        """
        return self._append_encoded([(EntryKind(kind), encode_data(data))])[0]

    def append_many(
        self, items: Sequence[tuple[EntryKind, Mapping[str, Any]]]
    ) -> list[AuditRecord]:
        """Append several entries in ONE transaction (group commit): all or none."""
        encoded = [(EntryKind(kind), encode_data(data)) for kind, data in items]
        return self._append_encoded(encoded)

    def _append_encoded(self, items: Sequence[tuple[EntryKind, str]]) -> list[AuditRecord]:
        """Append entries whose data is already encoded (by ``encode_data``).

        The package's AsyncAuditWriter calls this from its thread, having
        encoded the data on the event loop so that bad data fails its caller
        alone and never a whole batch.
        """
        if not items:
            return []
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Read the head under the write lock (see the module docstring).
                head = self._head_in_transaction()
                time_us = now_us(self._clock)
                rows = chain_rows(head, time_us, items)
                conn.executemany(_INSERT_ROW, rows)
                conn.execute("COMMIT")
            finally:
                _end_transaction(conn)
        except sqlite3.Error as exc:
            waited = (
                f" after waiting {self._busy_timeout_s:g} s"
                if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
                else ""
            )
            raise AuditUnavailable(
                f"cannot append to audit log {self._path}: {_describe(exc)}{waited}"
            ) from exc
        # Built from what was just written rather than decoded back from the
        # entry bytes: the writer thread holds the GIL while it works, and the
        # broker's event loop is waiting for it.
        return written_records(items, rows, time_us)

    def _head_in_transaction(self) -> tuple[int, bytes]:
        row = self._conn.execute(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return 0, GENESIS_HASH
        seq, head_hash = row
        if type(head_hash) is not bytes or len(head_hash) != HASH_SIZE:
            # Extending a visibly broken head would bury the damage; refuse.
            raise AuditUnavailable(
                f"audit log {self._path} head entry {seq} has a malformed hash;"
                " run `vertex audit verify`"
            ) from AuditIntegrityError(seq, "hash", f"stored hash is not {HASH_SIZE} bytes")
        return seq, head_hash

    # -- reading ------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def location(self) -> str:
        """The database file, for messages."""
        return str(self._path)

    def log_id(self) -> bytes:
        """The 16 random bytes made once when the file was created."""
        return self._log_id

    def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise AuditUnavailable(f"cannot read audit log {self._path}: {_describe(exc)}") from exc

    def head(self) -> tuple[int, bytes]:
        """Return ``(seq, hash)`` of the last entry, or ``(0, GENESIS_HASH)`` when empty."""
        rows = self._fetch("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        if not rows:
            return 0, GENESIS_HASH
        seq, head_hash = rows[0]
        if type(head_hash) is not bytes or len(head_hash) != HASH_SIZE:
            raise AuditIntegrityError(seq, "hash", f"stored hash is not {HASH_SIZE} bytes")
        return seq, head_hash

    def count(self) -> int:
        """Number of rows in the log."""
        count: int = self._fetch("SELECT count(*) FROM audit_log")[0][0]
        return count

    def tail(self, n: int) -> list[AuditRecord]:
        """The last ``n`` records, oldest first (format-checked, not chain-verified)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, not {n}")
        rows = self._fetch(f"{_SELECT_ROWS} ORDER BY seq DESC LIMIT ?", (n,))
        return [record_from_row(row) for row in reversed(rows)]

    def since(self, time_us: int, *, page: int = 256) -> list[AuditRecord]:
        """The records written at or after ``time_us``, oldest first, read from the end
        backwards a page at a time and only until the first older record: the cost
        depends on how much is recent, not on the length of the log. Entry times come
        from the writer's clock: a record after a step back of that clock by more
        than the age asked for ends the walk early."""
        if page < 1:
            raise ValueError(f"page must be >= 1, not {page}")
        found: list[AuditRecord] = []
        before = None
        while True:
            if before is None:
                rows = self._fetch(f"{_SELECT_ROWS} ORDER BY seq DESC LIMIT ?", (page,))
            else:
                rows = self._fetch(
                    f"{_SELECT_ROWS} WHERE seq < ? ORDER BY seq DESC LIMIT ?", (before, page)
                )
            for row in rows:
                record = record_from_row(row)
                if record.time_us < time_us:
                    found.reverse()
                    return found
                found.append(record)
            if len(rows) < page:
                found.reverse()
                return found
            before = rows[-1][0]

    def records(self, start: int = 1) -> Iterator[AuditRecord]:
        """Yield records from ``start`` on, in seq order (format-checked, not chain-verified).

        Reads a page at a time, so no statement stays open between yields.
        """
        next_seq = start
        while rows := self._fetch(
            f"{_SELECT_ROWS} WHERE seq >= ? ORDER BY seq LIMIT ?", (next_seq, _PAGE)
        ):
            for row in rows:
                yield record_from_row(row)
            next_seq = rows[-1][0] + 1

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """Hold one read transaction, so a long walk sees one consistent log."""
        try:
            self._conn.execute("BEGIN DEFERRED")
        except sqlite3.Error as exc:
            raise AuditUnavailable(f"cannot read audit log {self._path}: {_describe(exc)}") from exc
        try:
            yield self._conn
        finally:
            _end_transaction(self._conn)

    @contextmanager
    def _scan(self, batch: int) -> Iterator[Scan]:
        """Every row in seq order inside one read transaction (see ``AuditBackend``)."""
        with self._snapshot() as conn:
            try:
                total: int = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
                cursor = conn.execute(f"{_SELECT_ROWS} ORDER BY seq")

                def batches() -> Iterator[list[RawRow]]:
                    while rows := cursor.fetchmany(batch):
                        yield rows

                yield total, batches()
            except sqlite3.Error as exc:
                raise AuditUnavailable(
                    f"cannot read audit log {self._path}: {_describe(exc)}"
                ) from exc

    # -- lifetime -----------------------------------------------------------

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        self._conn.close()

    def __repr__(self) -> str:
        return f"AuditLog({str(self._path)!r}, log_id={self._log_id.hex()!r})"
