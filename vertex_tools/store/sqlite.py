"""The SQLite state store (the embedded default).

One file, WAL mode, one connection guarded by a lock; every write is a
``BEGIN IMMEDIATE`` transaction, so several processes (the broker, CLI
commands) share the file safely and checks read what they then update.
Commits wait for the disk (synchronous=FULL), except admissions that take
only rate or consume nonces the broker logs (``admit_many``).
"""

from __future__ import annotations

import hmac
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from vertex_tools._closing import Closing
from vertex_tools.errors import ApprovalError, StoreError
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
)
from vertex_tools.store.limits import WINDOW_S, next_arrival, over_window, replayed
from vertex_tools.store.rows import approval_from_row, console_session_from_row, token_from_row
from vertex_tools.tokens import TokenRecord

__all__ = ["SqliteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    token_id TEXT PRIMARY KEY, grant_name TEXT NOT NULL, public_key BLOB NOT NULL,
    verifier BLOB NOT NULL, created REAL NOT NULL, expires REAL NOT NULL,
    revoked REAL, last_used REAL);
CREATE TABLE IF NOT EXISTS nonces (
    token_id TEXT NOT NULL, nonce TEXT NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (token_id, nonce));
CREATE INDEX IF NOT EXISTS nonces_expires ON nonces (expires);
CREATE TABLE IF NOT EXISTS rate_buckets (key TEXT PRIMARY KEY, tat REAL NOT NULL);
CREATE TABLE IF NOT EXISTS spend (
    id INTEGER PRIMARY KEY AUTOINCREMENT, grant_name TEXT NOT NULL, currency TEXT NOT NULL,
    amount INTEGER NOT NULL, state TEXT NOT NULL, created REAL NOT NULL, settled REAL);
CREATE INDEX IF NOT EXISTS spend_window ON spend (grant_name, currency, created);
CREATE TABLE IF NOT EXISTS reconciled (request_id TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS approvals (
    approval_id TEXT PRIMARY KEY, token_id TEXT NOT NULL, grant_name TEXT NOT NULL,
    digest TEXT NOT NULL, state TEXT NOT NULL, created REAL NOT NULL, expires REAL NOT NULL,
    request TEXT NOT NULL, taint TEXT NOT NULL, decided REAL, decided_by TEXT, note TEXT,
    used REAL);
CREATE INDEX IF NOT EXISTS approvals_binding ON approvals (token_id, digest, created);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    token_id TEXT NOT NULL, key TEXT NOT NULL, digest TEXT NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (token_id, key));
CREATE TABLE IF NOT EXISTS console_logins (
    code_hash TEXT PRIMARY KEY, issued_by TEXT NOT NULL, created REAL NOT NULL,
    expires REAL NOT NULL, used REAL);
CREATE TABLE IF NOT EXISTS console_sessions (
    session_hash TEXT PRIMARY KEY, operator TEXT NOT NULL, created REAL NOT NULL,
    expires REAL NOT NULL, ended REAL);
"""
_SELECT_APPROVALS = (
    "SELECT approval_id, token_id, grant_name, digest, state, created, expires, request, taint, "
    "decided, decided_by, note, used FROM approvals"
)
_SELECT_TOKENS = (
    "SELECT token_id, grant_name, public_key, verifier, created, expires, revoked, last_used "
    "FROM tokens"
)


class _Batch:
    """What the admissions of one ``admit_many`` transaction have read and changed so
    far: each rate bucket's arrival time (None: no row yet), the buckets changed (in
    order) and each token's newest use. Kept in memory within the transaction, which
    holds the write lock: the same values the table would give back. A token's last
    use is the latest time among its admissions, also when calls that read the clock
    in one order reach the batch in another."""

    __slots__ = ("changed", "tats", "used")

    def __init__(self) -> None:
        self.tats: dict[str, float | None] = {}
        self.changed: dict[str, None] = {}
        self.used: dict[str, float] = {}


class SqliteStore(Closing):
    """State in one SQLite file (``vertex.db`` in the data directory)."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a spend reservation or a used nonce lost in a power cut would
            # reopen a ceiling or a replay window. Only admissions that take rate or
            # use logged nonces commit with NORMAL (admit_many says why that is safe).
            self._conn.execute("PRAGMA synchronous=FULL")
            self._durable = True
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open state database {path}: {exc}") from exc

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    @contextmanager
    def _tx(self, *, durable: bool = True) -> Iterator[sqlite3.Cursor]:
        """One ``BEGIN IMMEDIATE`` transaction; ``durable=False`` commits without
        waiting for the disk (see ``admit_many`` for the only caller that may)."""
        with self._lock:
            cur = self._conn.cursor()
            try:
                if durable is not self._durable:
                    # Between transactions only: SQLite applies it to the next commit.
                    cur.execute("PRAGMA synchronous=" + ("FULL" if durable else "NORMAL"))
                    self._durable = durable
                cur.execute("BEGIN IMMEDIATE")
                yield cur
                cur.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreError(f"state database {self.path}: {exc}") from exc
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            try:
                return list(self._conn.execute(sql, params).fetchall())
            except sqlite3.Error as exc:
                raise StoreError(f"state database {self.path}: {exc}") from exc

    def add_token(self, record: TokenRecord) -> None:
        """Store a newly issued token."""
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO tokens (token_id, grant_name, public_key, verifier, created, expires, "
                "revoked, last_used) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.token_id,
                    record.grant,
                    record.public_key,
                    record.verifier,
                    record.created,
                    record.expires,
                    record.revoked,
                    record.last_used,
                ),
            )

    def get_token(self, token_id: str) -> TokenRecord | None:
        """The token's record, or None."""
        rows = self._read(_SELECT_TOKENS + " WHERE token_id = ?", (token_id,))
        return token_from_row(rows[0]) if rows else None

    def list_tokens(self) -> list[TokenRecord]:
        """Every token, newest first."""
        rows = self._read(_SELECT_TOKENS + " ORDER BY created DESC, token_id")
        return [token_from_row(row) for row in rows]

    def revoke_token(self, token_id: str, now: float) -> TokenRecord | None:
        """Mark revoked (keeps the first revocation time); None when unknown."""
        with self._tx() as cur:
            cur.execute(
                "UPDATE tokens SET revoked = COALESCE(revoked, ?) WHERE token_id = ?",
                (now, token_id),
            )
            row = cur.execute(_SELECT_TOKENS + " WHERE token_id = ?", (token_id,)).fetchone()
        return token_from_row(row) if row else None

    def admit(self, admission: Admission) -> AdmissionResult:
        """Nonce, rate and spend in one transaction.

        Checks first, writes last: a refused request consumes its nonce (so it
        cannot be replayed) but takes no rate and reserves no spend.
        """
        return self.admit_many([admission])[0]

    def admit_many(self, admissions: Sequence[Admission]) -> list[AdmissionResult]:
        """Several admissions in ONE transaction (group commit), each as ``admit``.

        They are checked in order under one write lock, so each one sees the
        nonces, rate and spend the ones before it took: together they can no
        more pass a ceiling than one at a time. All or nothing: if the
        transaction fails, every caller gets the ``StoreError``.

        Durability: the commit waits for the disk (synchronous=FULL) when any
        admission reserves spend (a reservation lost in a power cut would reopen
        the spend ceiling) or consumes a nonce that is not ``nonce_logged``.
        Otherwise (rate, ``last_used``, and nonces the caller logs) it commits
        with synchronous=NORMAL: WAL mode keeps the file consistent, a crash of
        the broker process loses nothing (the OS has the write), and a power cut
        or kernel crash can roll back only the last such commits.

        - Rate: forgetting some requests of a rate window lets at most one
          window's worth of extra calls through, once.
        - A ``nonce_logged`` nonce: the broker writes the request's intent entry
          (token id and nonce) to the audit log with synchronous=FULL before it
          forwards or answers anything, and at start, before serving, puts the
          nonces of the intents still inside the nonce lifetime back
          (``restore_nonces``). So every nonce of a request that was forwarded or
          answered survives the power cut; a nonce lost together with its intent
          belongs to a request that was never forwarded nor answered, and a
          "replay" of it is its first execution. This saves the second flush of
          a signed call (docs/durability.md).

        The next durable commit (any unlogged nonce, spend, token or approval
        write) makes every earlier one durable too.
        """
        if not admissions:
            return []
        durable = any(
            a.spend is not None or (a.nonce is not None and not a.nonce_logged) for a in admissions
        )
        batch = _Batch()
        with self._tx(durable=durable) as cur:
            results = [self._admit(cur, admission, batch) for admission in admissions]
            # Written once per batch, as the last of its admissions left them: a
            # batch of one token's calls updates its row and its bucket once.
            cur.executemany(
                "UPDATE tokens SET last_used = ? WHERE token_id = ?",
                [(now, token_id) for token_id, now in batch.used.items()],
            )
            cur.executemany(
                "INSERT INTO rate_buckets (key, tat) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET tat = excluded.tat",
                [(key, batch.tats[key]) for key in batch.changed],
            )
        return results

    def _admit(self, cur: sqlite3.Cursor, admission: Admission, batch: _Batch) -> AdmissionResult:
        now = admission.now
        if admission.nonce is not None:
            try:
                cur.execute(
                    "INSERT INTO nonces (token_id, nonce, expires) VALUES (?, ?, ?)",
                    (admission.token_id, admission.nonce, admission.nonce_expires),
                )
            except sqlite3.IntegrityError:
                return replayed()
        batch.used[admission.token_id] = max(now, batch.used.get(admission.token_id, now))
        new_tats: list[tuple[str, float]] = []
        for bucket in admission.rates:
            outcome = self._rate(cur, bucket, now, batch)
            if isinstance(outcome, AdmissionResult):
                return outcome
            new_tats.append((bucket.key, outcome))
        spend = admission.spend
        if spend is not None and spend.per_day is not None:
            used = self._used(cur, spend.grant, spend.currency, now - WINDOW_S)
            refused = over_window(spend, used)
            if refused is not None:
                return refused
        for key, tat in new_tats:
            batch.tats[key] = tat
            batch.changed[key] = None
        reservation: int | None = None
        if spend is not None:
            cur.execute(
                "INSERT INTO spend (grant_name, currency, amount, state, created) "
                "VALUES (?, ?, ?, 'reserved', ?)",
                (spend.grant, spend.currency, spend.amount, now),
            )
            reservation = cur.lastrowid
        return AdmissionResult(reservation=reservation)

    @staticmethod
    def _rate(
        cur: sqlite3.Cursor, bucket: RateKey, now: float, batch: _Batch
    ) -> AdmissionResult | float:
        if bucket.key not in batch.tats:
            row = cur.execute(
                "SELECT tat FROM rate_buckets WHERE key = ?", (bucket.key,)
            ).fetchone()
            batch.tats[bucket.key] = float(row[0]) if row else None
        return next_arrival(bucket, batch.tats[bucket.key], now)

    @staticmethod
    def _used(cur: sqlite3.Cursor, grant: str, currency: str, since: float) -> int:
        row = cur.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM spend WHERE grant_name = ? AND currency = ? "
            "AND created > ? AND state IN ('reserved', 'committed')",
            (grant, currency, since),
        ).fetchone()
        return int(row[0])

    def restore_nonces(self, used: Sequence[tuple[str, str, float]], now: float) -> int:
        """Put back used nonces ``(token_id, nonce, expires)`` that are still live at
        ``now`` (a power cut may have rolled back their NORMAL commit, see
        ``admit_many``); one that is already there stays as it is. Waits for the disk.
        Returns how many were missing."""
        live = [(token_id, nonce, expires) for token_id, nonce, expires in used if expires > now]
        if not live:
            return 0
        with self._tx() as cur:
            before = self._conn.total_changes
            cur.executemany(
                "INSERT OR IGNORE INTO nonces (token_id, nonce, expires) VALUES (?, ?, ?)", live
            )
            return self._conn.total_changes - before

    def sync(self) -> None:
        """Make every commit so far durable (one flush of the write-ahead log), for a
        caller about to answer after NORMAL commits whose audit entry failed."""
        with self._lock:
            try:
                fd = os.open(str(self.path) + "-wal", os.O_RDONLY)
            except FileNotFoundError:
                return  # no log: everything is in the database file, synced at checkpoint
            except OSError as exc:
                raise StoreError(f"state database {self.path}: {exc}") from exc
            try:
                os.fsync(fd)
            except OSError as exc:
                raise StoreError(f"state database {self.path}: {exc}") from exc
            finally:
                os.close(fd)

    def settle(self, reservation: int, *, commit: bool, now: float) -> None:
        """Commit or release a reservation; settling twice changes nothing."""
        with self._tx() as cur:
            cur.execute(
                "UPDATE spend SET state = ?, settled = ? WHERE id = ? AND state = 'reserved'",
                ("committed" if commit else "released", now, reservation),
            )

    def spend_used(self, grant: str, currency: str, since: float) -> int:
        """Reserved plus committed spend since ``since``."""
        with self._tx() as cur:
            return self._used(cur, grant, currency, since)

    def claim_orphan(self, request_id: str, now: float) -> bool:
        """True for exactly one caller per request id: who records its orphan outcome."""
        with self._tx() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO reconciled (request_id, at) VALUES (?, ?)",
                (request_id, now),
            )
            return cur.rowcount == 1

    def approval_gate(
        self, request: ApprovalRequest, now: float, *, max_pending: int
    ) -> ApprovalRecord:
        """Use an approved approval, return a pending or denied one, or hold anew
        (PendingApprovalsFull past the token's cap)."""
        with self._tx() as cur:
            row = cur.execute(
                _SELECT_APPROVALS + " WHERE token_id = ? AND digest = ? AND expires > ? "
                "AND state IN ('pending', 'approved', 'denied') ORDER BY created DESC LIMIT 1",
                (request.token_id, request.digest, now),
            ).fetchone()
            if row is not None:
                found = approval_from_row(row, now)
                if found.state is ApprovalState.APPROVED:
                    cur.execute(
                        "UPDATE approvals SET state = 'used', used = ? "
                        "WHERE approval_id = ? AND state = 'approved'",
                        (now, found.approval_id),
                    )
                    row = cur.execute(
                        _SELECT_APPROVALS + " WHERE approval_id = ?", (found.approval_id,)
                    ).fetchone()
                    return approval_from_row(row, now)
                return found
            (pending,) = cur.execute(
                "SELECT COUNT(*) FROM approvals WHERE token_id = ? AND state = 'pending' "
                "AND expires > ?",
                (request.token_id, now),
            ).fetchone()
            if int(pending) >= max_pending:
                raise PendingApprovalsFull(request.token_id, int(pending), max_pending)
            cur.execute(
                "INSERT INTO approvals (approval_id, token_id, grant_name, digest, state, "
                "created, expires, request, taint) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
                (
                    request.approval_id,
                    request.token_id,
                    request.grant,
                    request.digest,
                    request.created,
                    request.expires,
                    json.dumps(dict(request.request), sort_keys=True),
                    json.dumps([dict(t) for t in request.taint], sort_keys=True),
                ),
            )
            row = cur.execute(
                _SELECT_APPROVALS + " WHERE approval_id = ?", (request.approval_id,)
            ).fetchone()
            return approval_from_row(row, now)

    def decide_approval(
        self, approval_id: str, *, approve: bool, now: float, by: str, note: str | None
    ) -> ApprovalRecord:
        """pending -> approved or denied; ApprovalError otherwise."""
        with self._tx() as cur:
            row = cur.execute(
                _SELECT_APPROVALS + " WHERE approval_id = ?", (approval_id,)
            ).fetchone()
            if row is None:
                raise ApprovalError(f"no approval {approval_id!r}; see `vertex approvals list`")
            found = approval_from_row(row, now)
            if found.state is not ApprovalState.PENDING:
                raise ApprovalError(
                    f"approval {approval_id} is {found.state.value}, not pending; "
                    "only a pending request can be approved or denied"
                )
            state = ApprovalState.APPROVED if approve else ApprovalState.DENIED
            # An approval is for the retry that follows: it gets a fresh window from now.
            ttl = found.expires - found.created
            cur.execute(
                "UPDATE approvals SET state = ?, decided = ?, decided_by = ?, note = ?, "
                "expires = ? WHERE approval_id = ? AND state = 'pending'",
                (state.value, now, by, note, now + ttl, approval_id),
            )
            row = cur.execute(
                _SELECT_APPROVALS + " WHERE approval_id = ?", (approval_id,)
            ).fetchone()
        return approval_from_row(row, now)

    def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        """One approval, or None."""
        rows = self._read(_SELECT_APPROVALS + " WHERE approval_id = ?", (approval_id,))
        return approval_from_row(rows[0], time.time()) if rows else None

    def list_approvals(self, state: ApprovalState | None = None) -> list[ApprovalRecord]:
        """Approvals, newest first, optionally only those in ``state``."""
        now = time.time()
        rows = self._read(_SELECT_APPROVALS + " ORDER BY created DESC, approval_id")
        found = [approval_from_row(row, now) for row in rows]
        return [a for a in found if state is None or a.state is state]

    def claim_idempotency(
        self, token_id: str, key: str, digest: str, now: float, ttl: float
    ) -> IdempotencyClaim:
        """NEW (recorded), SAME (a retry of the same request) or CONFLICT."""
        with self._tx() as cur:
            row = cur.execute(
                "SELECT digest FROM idempotency_keys WHERE token_id = ? AND key = ? "
                "AND expires > ?",
                (token_id, key, now),
            ).fetchone()
            if row is not None:
                return IdempotencyClaim.SAME if row[0] == digest else IdempotencyClaim.CONFLICT
            cur.execute(
                "INSERT INTO idempotency_keys (token_id, key, digest, expires) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (token_id, key) DO UPDATE SET digest = excluded.digest, "
                "expires = excluded.expires",
                (token_id, key, digest, now + ttl),
            )
            return IdempotencyClaim.NEW

    def add_console_login(
        self, code_hash: str, *, issued_by: str, created: float, expires: float
    ) -> None:
        """Store a one-time login code's hash."""
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO console_logins (code_hash, issued_by, created, expires) "
                "VALUES (?, ?, ?, ?)",
                (code_hash, issued_by, created, expires),
            )

    def redeem_console_login(
        self, code_hash: str, session_hash: str, *, now: float, expires: float
    ) -> ConsoleSession | None:
        """Use the code once and start a session, or None."""
        with self._tx() as cur:
            row = cur.execute(
                "SELECT code_hash, issued_by FROM console_logins WHERE code_hash = ? "
                "AND used IS NULL AND expires > ?",
                (code_hash, now),
            ).fetchone()
            if row is None or not hmac.compare_digest(str(row[0]), code_hash):
                return None
            cur.execute("UPDATE console_logins SET used = ? WHERE code_hash = ?", (now, code_hash))
            cur.execute(
                "INSERT INTO console_sessions (session_hash, operator, created, expires) "
                "VALUES (?, ?, ?, ?)",
                (session_hash, row[1], now, expires),
            )
        return ConsoleSession(str(row[1]), now, expires)

    def get_console_session(self, session_hash: str, now: float) -> ConsoleSession | None:
        """The live session, or None."""
        rows = self._read(
            "SELECT session_hash, operator, created, expires FROM console_sessions "
            "WHERE session_hash = ? AND ended IS NULL AND expires > ?",
            (session_hash, now),
        )
        if not rows or not hmac.compare_digest(str(rows[0][0]), session_hash):
            return None
        return console_session_from_row(rows[0][1:])

    def end_console_session(self, session_hash: str, now: float) -> None:
        """Sign out (idempotent)."""
        with self._tx() as cur:
            cur.execute(
                "UPDATE console_sessions SET ended = COALESCE(ended, ?) WHERE session_hash = ?",
                (now, session_hash),
            )

    def prune(self, now: float) -> None:
        """Drop expired nonces, idempotency keys, console codes and sessions, and spend rows
        older than the window."""
        with self._tx() as cur:
            cur.execute("DELETE FROM console_logins WHERE expires < ?", (now,))
            cur.execute("DELETE FROM console_sessions WHERE expires < ?", (now,))
            cur.execute("DELETE FROM nonces WHERE expires < ?", (now,))
            cur.execute("DELETE FROM idempotency_keys WHERE expires < ?", (now,))
            cur.execute(
                "DELETE FROM spend WHERE created < ? AND state != 'reserved'", (now - 2 * WINDOW_S,)
            )

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
