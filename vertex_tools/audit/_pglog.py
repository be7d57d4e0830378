"""The audit log in the PostgreSQL database that broker replicas share.

Tables (made by schema migration 1, ``vertex_tools.store.migrations``)::

    audit_log(seq BIGINT PRIMARY KEY, prev_hash BYTEA, hash BYTEA, entry BYTEA)
    audit_meta(key TEXT PRIMARY KEY, value BYTEA)   -- "format", "log_id"

Why it stays ONE linear chain with many replicas appending at once: every
append takes ``pg_advisory_xact_lock`` on the log before it reads the head,
and holds it until its rows are committed; another appender, on any host,
waits for that lock and then reads the new head. ``seq`` being the primary
key makes a fork impossible even if the lock were bypassed: the second insert
of a seq fails, and that batch with it. Entries are byte for byte what the
SQLite log stores, so verification and checkpoints are the same code.

Durability: a commit returns once PostgreSQL has flushed it (keep
``synchronous_commit`` on, the default; with a synchronous standby, an intent
survives the loss of the primary too). Triggers refuse UPDATE, DELETE and
TRUNCATE on ``audit_log``; like SQLite's, they stop accidents, not attackers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from vertex_tools._closing import Closing
from vertex_tools.audit._backend import (
    RawRow,
    Scan,
    chain_rows,
    now_us,
    written_records,
)
from vertex_tools.audit._entry import (
    GENESIS_HASH,
    HASH_SIZE,
    AuditRecord,
    EntryKind,
    encode_data,
    record_from_row,
)
from vertex_tools.audit._log import LOG_FORMAT, LOG_ID_SIZE
from vertex_tools.errors import AuditIntegrityError, AuditUnavailable
from vertex_tools.store._pg import LOCK_AUDIT, PgConnection, PgCursor, advisory_lock
from vertex_tools.store.dsn import PostgresDsn
from vertex_tools.store.migrations import check_schema

__all__ = ["PostgresAuditLog"]

_PAGE = 1000
_SELECT_ROWS = "SELECT seq, prev_hash, hash, entry FROM audit_log"
_INSERT_ROW = "INSERT INTO audit_log (seq, prev_hash, hash, entry) VALUES (%s, %s, %s, %s)"


def _bytes(value: object) -> object:
    return bytes(value) if isinstance(value, memoryview) else value


class PostgresAuditLog(Closing):
    """The hash-chained audit log in a shared PostgreSQL database (an ``AuditBackend``).

    Not thread-safe beyond its connection lock: one instance per thread, as
    with ``AuditLog``. Any number of instances, on any number of hosts, may
    append at once. ``read_only=True`` opens a session PostgreSQL itself keeps
    from writing (verification and inspection use it).
    """

    def __init__(
        self,
        dsn: PostgresDsn,
        *,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
    ) -> None:
        """Connect, check the schema version and the log's format; ``AuditUnavailable``
        naming the fix otherwise."""
        self._dsn = dsn
        self._clock = clock
        self._read_only = read_only
        self._db = PgConnection(
            dsn, error=AuditUnavailable, what="audit log", application_name="vertex_tools audit"
        )
        try:
            with self._db.transaction() as cur:
                check_schema(cur, dsn, AuditUnavailable)
                if read_only:
                    cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                cur.execute("SELECT key, value FROM audit_meta")
                meta = {str(k): _bytes(v) for k, v in cur.fetchall()}
        except BaseException:
            self._db.close()
            raise
        found = meta.get("format")
        if found != LOG_FORMAT.encode():
            raise AuditUnavailable(
                f"audit log in {dsn.redacted} has format {found!r}; this version reads "
                f"{LOG_FORMAT!r}"
            )
        log_id = meta.get("log_id")
        if not isinstance(log_id, bytes) or len(log_id) != LOG_ID_SIZE:
            raise AuditUnavailable(f"audit log in {dsn.redacted} has no valid log_id in audit_meta")
        self._log_id = log_id

    @property
    def location(self) -> str:
        """The database URL, password masked."""
        return self._dsn.redacted

    def log_id(self) -> bytes:
        """The 16 random bytes made when the database was initialised."""
        return self._log_id

    # -- appending ----------------------------------------------------------

    def append(self, kind: EntryKind, data: Mapping[str, Any]) -> AuditRecord:
        """Append one entry in its own transaction and return it as stored."""
        return self._append_encoded([(EntryKind(kind), encode_data(data))])[0]

    def append_many(
        self, items: Sequence[tuple[EntryKind, Mapping[str, Any]]]
    ) -> list[AuditRecord]:
        """Append several entries in ONE transaction (group commit): all or none."""
        return self._append_encoded([(EntryKind(kind), encode_data(data)) for kind, data in items])

    def _append_encoded(self, items: Sequence[tuple[EntryKind, str]]) -> list[AuditRecord]:
        """Lock the log, read the head, insert after it, commit (see the module docstring)."""
        if not items:
            return []
        if self._read_only:
            raise AuditUnavailable(f"audit log in {self.location} was opened read-only")
        with self._db.transaction() as cur:
            advisory_lock(cur, LOCK_AUDIT, "audit_log")
            head = self._head(cur)
            time_us = now_us(self._clock)
            rows = chain_rows(head, time_us, items)
            cur.executemany(_INSERT_ROW, rows)
        return written_records(items, rows, time_us)

    def _head(self, cur: PgCursor) -> tuple[int, bytes]:
        cur.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        row = cur.fetchone()
        if row is None:
            return 0, GENESIS_HASH
        seq, head_hash = int(str(row[0])), _bytes(row[1])
        if not isinstance(head_hash, bytes) or len(head_hash) != HASH_SIZE:
            # Extending a visibly broken head would bury the damage; refuse.
            raise AuditUnavailable(
                f"audit log in {self.location}: head entry {seq} has a malformed hash;"
                " run `vertex audit verify`"
            ) from AuditIntegrityError(seq, "hash", f"stored hash is not {HASH_SIZE} bytes")
        return seq, head_hash

    # -- reading ------------------------------------------------------------

    def _fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        with self._db.transaction() as cur:
            cur.execute(sql, params)
            return [tuple(_bytes(v) for v in row) for row in cur.fetchall()]

    def head(self) -> tuple[int, bytes]:
        """``(seq, hash)`` of the last entry, or ``(0, GENESIS_HASH)`` when empty."""
        rows = self._fetch("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        if not rows:
            return 0, GENESIS_HASH
        seq, head_hash = int(str(rows[0][0])), rows[0][1]
        if not isinstance(head_hash, bytes) or len(head_hash) != HASH_SIZE:
            raise AuditIntegrityError(seq, "hash", f"stored hash is not {HASH_SIZE} bytes")
        return seq, head_hash

    def count(self) -> int:
        """Number of rows in the log."""
        return int(str(self._fetch("SELECT count(*) FROM audit_log")[0][0]))

    def tail(self, n: int) -> list[AuditRecord]:
        """The last ``n`` records, oldest first (format-checked, not chain-verified)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, not {n}")
        rows = self._fetch(f"{_SELECT_ROWS} ORDER BY seq DESC LIMIT %s", (n,))
        return [record_from_row(row) for row in reversed(rows)]

    def records(self, start: int = 1) -> Iterator[AuditRecord]:
        """Records from ``start`` on, in seq order, a page per query."""
        next_seq = start
        while rows := self._fetch(
            f"{_SELECT_ROWS} WHERE seq >= %s ORDER BY seq LIMIT %s", (next_seq, _PAGE)
        ):
            for row in rows:
                yield record_from_row(row)
            next_seq = int(str(rows[-1][0])) + 1

    @contextmanager
    def _scan(self, batch: int) -> Iterator[Scan]:
        """One REPEATABLE READ snapshot, read through a server-side cursor."""
        with self._db.transaction() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur.execute("SELECT count(*) FROM audit_log")
            counted = cur.fetchone()
            total = int(str(counted[0])) if counted is not None else 0
            with cur.connection.cursor(name="vertex_audit_verify") as named:
                named.itersize = batch
                named.execute(f"{_SELECT_ROWS} ORDER BY seq")

                def batches() -> Iterator[list[RawRow]]:
                    while rows := named.fetchmany(batch):
                        yield [
                            (int(str(s)), _as_bytes(p), _as_bytes(h), _as_bytes(e))
                            for s, p, h, e in rows
                        ]

                yield total, batches()

    # -- lifetime -----------------------------------------------------------

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        self._db.close()

    def __repr__(self) -> str:
        return f"PostgresAuditLog({self.location!r}, log_id={self._log_id.hex()!r})"


def _as_bytes(value: object) -> bytes:
    # A column that is not bytea is a damaged table: let verification say so
    # (decode_entry and the hash comparisons reject non-bytes) instead of crashing.
    if isinstance(value, memoryview):
        return bytes(value)
    return value  # type: ignore[return-value]
