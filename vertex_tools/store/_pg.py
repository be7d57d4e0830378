"""One PostgreSQL connection, as every PostgreSQL-backed part of vertex_tools holds it.

- psycopg errors never escape: :meth:`PgConnection.error` turns them into the
  caller's error type (``StoreError``, ``AuditUnavailable``) ``from`` the
  original, with the password scrubbed from the message.
- A connection found broken when a transaction begins (the server restarted,
  a failover, an idle connection cut) is replaced and the transaction begun
  again: nothing of it had reached the server. A connection that breaks
  later, mid-transaction, fails that call (what it wrote may or may not be
  committed) and is replaced on the next.
- Transactions run at READ COMMITTED; the code that needs mutual exclusion
  says so with row locks or :func:`advisory_lock`, named per use below.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import psycopg

from vertex_tools.errors import VertexError
from vertex_tools.store.dsn import PostgresDsn

__all__ = [
    "LOCK_APPROVAL",
    "LOCK_AUDIT",
    "LOCK_IDEMPOTENCY",
    "LOCK_MIGRATE",
    "LOCK_SPEND",
    "LOCK_VAULT",
    "PgConnection",
    "PgCursor",
    "advisory_lock",
    "describe",
]

# Namespaces (the first key of pg_advisory_xact_lock(int, int)); the second key is
# hashtext() of the locked name. A hash collision only serialises more than needed.
LOCK_MIGRATE = 7_000_001
LOCK_AUDIT = 7_000_002
LOCK_SPEND = 7_000_003
LOCK_APPROVAL = 7_000_004
LOCK_IDEMPOTENCY = 7_000_005
LOCK_VAULT = 7_000_006
CONNECT_TIMEOUT_S = 10

PgCursor = psycopg.Cursor[tuple[object, ...]]


def advisory_lock(cur: PgCursor, namespace: int, name: str) -> None:
    """Hold an exclusive lock on (namespace, name) until the transaction ends."""
    cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (namespace, name))


def describe(exc: psycopg.Error) -> str:
    """A one-line description of a psycopg error (no parameter values: DETAIL is left out)."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = str(primary or "").strip()
    if not text:
        lines = str(exc).strip().splitlines()
        text = lines[0].strip() if lines else type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None)
    return f"{text} (SQLSTATE {sqlstate})" if sqlstate else text


class PgConnection:
    """A lock-guarded psycopg connection in autocommit mode; transactions are explicit."""

    def __init__(
        self,
        dsn: PostgresDsn,
        *,
        error: Callable[[str], VertexError],
        what: str,
        application_name: str = "vertex_tools",
    ) -> None:
        """Connect now, so a wrong URL or a down server fails at start, not on first use.

        ``application_name`` (with this process's id added) is what
        ``pg_stat_activity`` shows: which broker holds which connection.
        """
        self.dsn = dsn
        self._error = error
        self._what = what
        self._application_name = f"{application_name} pid={os.getpid()}"
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        with self._lock:
            self._connect()

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        try:
            self._conn = psycopg.connect(
                self.dsn.url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name=self._application_name,
            )
        except psycopg.Error as exc:
            raise self.error(f"cannot connect to {self._what}", exc) from exc
        return self._conn

    def error(self, doing: str, exc: psycopg.Error) -> VertexError:
        """The caller's error type for ``exc``, naming the database without its password."""
        return self._error(f"{doing} {self.dsn.redacted}: {self.dsn.scrub(describe(exc))}")

    def _live(self) -> psycopg.Connection[tuple[object, ...]]:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
            conn = self._connect()
        return conn

    def _begin(self, stack: ExitStack) -> PgCursor:
        """BEGIN, on a new connection if the current one turns out to be dead."""
        for attempt in (1, 2):
            conn = self._live()
            try:
                stack.enter_context(conn.transaction())
            except psycopg.OperationalError:
                if attempt == 1 and conn.broken:
                    continue  # lost before this transaction sent anything: safe to redo
                raise
            return stack.enter_context(conn.cursor())
        raise AssertionError("unreachable: the second attempt returns or raises")

    @contextmanager
    def transaction(self) -> Iterator[PgCursor]:
        """One transaction (committed when the block ends, rolled back if it raises);
        psycopg errors become the caller's error type."""
        with self._lock:
            try:
                with ExitStack() as stack:
                    yield self._begin(stack)
            except psycopg.Error as exc:
                raise self.error(self._what, exc) from exc

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
