"""The PostgreSQL state store: several broker replicas share one database.

Same interface and semantics as :class:`~vertex_tools.store.sqlite.SqliteStore`
(the reference). SQLite gets its mutual exclusion for free (``BEGIN
IMMEDIATE`` takes the one write lock); PostgreSQL runs transactions side by
side, so every read-then-write below names what serialises it:

==================  ============================================================
admit: nonce        the primary key; the second insert of a nonce waits, then
                    finds the conflict (``ON CONFLICT DO NOTHING``: rowcount 0)
admit: rate         the bucket's row, created if missing, then ``FOR UPDATE``;
                    buckets are locked in key order (no deadlock)
admit: spend        advisory lock on (grant, currency), held to commit, so two
                    reservations never both see the same total
settle              one row by id, guarded by ``state = 'reserved'``
claim_orphan        the primary key (``ON CONFLICT DO NOTHING``)
approval_gate       advisory lock on the token (its pending count and the
                    (token, digest) lookup), then the row's update is guarded
                    by ``state = 'approved'``: one caller gets USED
decide_approval     ``SELECT ... FOR UPDATE`` on the approval
redeem_console_...  the login code's row, ``UPDATE ... WHERE used IS NULL``: the
                    second redemption waits, then updates nothing
claim_idempotency   advisory lock on (token, key)
==================  ============================================================

A broker refuses to open a database whose schema is not this version's
(``migrations.check_schema``); ``vertex init --store URL`` migrates it.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Sequence

from vertex_tools._closing import Closing
from vertex_tools.errors import ApprovalError, StoreError
from vertex_tools.store._pg import (
    LOCK_APPROVAL,
    LOCK_IDEMPOTENCY,
    LOCK_SPEND,
    PgConnection,
    PgCursor,
    advisory_lock,
)
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
from vertex_tools.store.dsn import PostgresDsn
from vertex_tools.store.limits import WINDOW_S, next_arrival, over_window, replayed
from vertex_tools.store.migrations import Migration, connect_checked, migrate
from vertex_tools.store.rows import approval_from_row, console_session_from_row, token_from_row
from vertex_tools.tokens import TokenRecord

__all__ = ["PostgresStore", "initialise_postgres"]

_SELECT_TOKENS = (
    "SELECT token_id, grant_name, public_key, verifier, created, expires, revoked, last_used "
    "FROM tokens"
)
_SELECT_APPROVALS = (
    "SELECT approval_id, token_id, grant_name, digest, state, created, expires, request, taint, "
    "decided, decided_by, note, used FROM approvals"
)


def initialise_postgres(dsn: PostgresDsn, *, actor: str) -> list[Migration]:
    """Apply every pending schema migration to ``dsn``; return what was applied."""
    conn = PgConnection(dsn, error=StoreError, what="state database")
    try:
        with conn.transaction() as cur:
            return migrate(cur, dsn, StoreError, actor=actor)
    finally:
        conn.close()


class PostgresStore(Closing):
    """State in a PostgreSQL database shared by every broker replica.

    One connection guarded by a lock (the broker calls it from one thread);
    opening checks the schema version and raises :class:`StoreError` naming the fix.
    """

    def __init__(self, dsn: PostgresDsn) -> None:
        self.dsn = dsn
        self._db = connect_checked(dsn, what="state database")

    def __repr__(self) -> str:
        return f"PostgresStore({self.dsn.redacted!r})"

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        with self._db.transaction() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    # tokens --------------------------------------------------------------------------------

    def add_token(self, record: TokenRecord) -> None:
        """Store a newly issued token."""
        with self._db.transaction() as cur:
            cur.execute(
                "INSERT INTO tokens (token_id, grant_name, public_key, verifier, created, expires, "
                "revoked, last_used) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
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
        """The token's record, or None (read fresh: a revocation shows at once)."""
        rows = self._read(_SELECT_TOKENS + " WHERE token_id = %s", (token_id,))
        return token_from_row(rows[0]) if rows else None

    def list_tokens(self) -> list[TokenRecord]:
        """Every token, newest first."""
        rows = self._read(_SELECT_TOKENS + " ORDER BY created DESC, token_id")
        return [token_from_row(row) for row in rows]

    def revoke_token(self, token_id: str, now: float) -> TokenRecord | None:
        """Mark revoked (keeps the first revocation time); None when unknown."""
        with self._db.transaction() as cur:
            cur.execute(
                "UPDATE tokens SET revoked = COALESCE(revoked, %s) WHERE token_id = %s",
                (now, token_id),
            )
            cur.execute(_SELECT_TOKENS + " WHERE token_id = %s", (token_id,))
            row = cur.fetchone()
        return token_from_row(row) if row else None

    # admission -----------------------------------------------------------------------------

    def admit(self, admission: Admission) -> AdmissionResult:
        """Nonce, rate and spend in one transaction (see the module docstring for locks).

        Checks first, writes last: a refused request consumes its nonce (so it
        cannot be replayed) but takes no rate and reserves no spend.
        """
        now = admission.now
        with self._db.transaction() as cur:
            if admission.nonce is not None:
                cur.execute(
                    "INSERT INTO nonces (token_id, nonce, expires) VALUES (%s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (admission.token_id, admission.nonce, admission.nonce_expires),
                )
                if cur.rowcount != 1:
                    return replayed()
            cur.execute(
                "UPDATE tokens SET last_used = %s WHERE token_id = %s", (now, admission.token_id)
            )
            new_tats: list[tuple[str, float]] = []
            for bucket in sorted(admission.rates, key=lambda b: b.key):
                outcome = self._rate(cur, bucket, now)
                if isinstance(outcome, AdmissionResult):
                    return outcome
                new_tats.append((bucket.key, outcome))
            spend = admission.spend
            if spend is not None and spend.per_day is not None:
                # Held to commit: the next reservation's sum then includes this one.
                advisory_lock(cur, LOCK_SPEND, f"{spend.grant}\n{spend.currency}")
                used = self._used(cur, spend.grant, spend.currency, now - WINDOW_S)
                refused = over_window(spend, used)
                if refused is not None:
                    return refused
            if new_tats:
                cur.executemany("UPDATE rate_buckets SET tat = %s WHERE key = %s",
                                [(tat, key) for key, tat in new_tats])  # fmt: skip
            reservation: int | None = None
            if spend is not None:
                cur.execute(
                    "INSERT INTO spend (grant_name, currency, amount, state, created) "
                    "VALUES (%s, %s, %s, 'reserved', %s) RETURNING id",
                    (spend.grant, spend.currency, spend.amount, now),
                )
                row = cur.fetchone()
                reservation = int(str(row[0])) if row is not None else None
            return AdmissionResult(reservation=reservation)

    def admit_many(self, admissions: Sequence[Admission]) -> list[AdmissionResult]:
        """Each admission in its own transaction, in order (same results as ``admit``).

        Not one transaction here, unlike SQLite: a batch would hold the row locks
        of many tokens' rate buckets at once, taken in arrival order, and two
        replicas' batches could then deadlock each other. One round trip per
        admission is what replicas already pay; the broker still sends them as
        a batch, so a single-replica deployment loses nothing by it.
        """
        return [self.admit(admission) for admission in admissions]

    @staticmethod
    def _rate(cur: PgCursor, bucket: RateKey, now: float) -> AdmissionResult | float:
        # The row is created first (if missing) so that FOR UPDATE has something to
        # lock even for a bucket's very first request.
        cur.execute(
            "INSERT INTO rate_buckets (key, tat) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (bucket.key, now),
        )
        cur.execute("SELECT tat FROM rate_buckets WHERE key = %s FOR UPDATE", (bucket.key,))
        row = cur.fetchone()
        return next_arrival(bucket, float(str(row[0])) if row else None, now)

    @staticmethod
    def _used(cur: PgCursor, grant: str, currency: str, since: float) -> int:
        cur.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM spend WHERE grant_name = %s "
            "AND currency = %s AND created > %s AND state IN ('reserved', 'committed')",
            (grant, currency, since),
        )
        row = cur.fetchone()
        return int(str(row[0])) if row is not None else 0

    def settle(self, reservation: int, *, commit: bool, now: float) -> None:
        """Commit or release a reservation; settling twice changes nothing."""
        with self._db.transaction() as cur:
            cur.execute(
                "UPDATE spend SET state = %s, settled = %s WHERE id = %s AND state = 'reserved'",
                ("committed" if commit else "released", now, reservation),
            )

    def spend_used(self, grant: str, currency: str, since: float) -> int:
        """Reserved plus committed spend since ``since``."""
        with self._db.transaction() as cur:
            return self._used(cur, grant, currency, since)

    def claim_orphan(self, request_id: str, now: float) -> bool:
        """True for exactly one caller per request id: who records its orphan outcome."""
        with self._db.transaction() as cur:
            cur.execute(
                "INSERT INTO reconciled (request_id, at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (request_id, now),
            )
            return cur.rowcount == 1

    # approvals -----------------------------------------------------------------------------

    def approval_gate(
        self, request: ApprovalRequest, now: float, *, max_pending: int
    ) -> ApprovalRecord:
        """Use an approved approval, return a pending or denied one, or hold anew
        (PendingApprovalsFull past the token's cap)."""
        with self._db.transaction() as cur:
            # The token's lock, not (token, digest): holds of different requests of one
            # token are counted against its cap one at a time.
            advisory_lock(cur, LOCK_APPROVAL, request.token_id)
            cur.execute(
                _SELECT_APPROVALS + " WHERE token_id = %s AND digest = %s AND expires > %s "
                "AND state IN ('pending', 'approved', 'denied') "
                "ORDER BY created DESC LIMIT 1 FOR UPDATE",
                (request.token_id, request.digest, now),
            )
            row = cur.fetchone()
            if row is not None:
                found = approval_from_row(row, now)
                if found.state is ApprovalState.APPROVED:
                    cur.execute(
                        "UPDATE approvals SET state = 'used', used = %s "
                        "WHERE approval_id = %s AND state = 'approved'",
                        (now, found.approval_id),
                    )
                    cur.execute(_SELECT_APPROVALS + " WHERE approval_id = %s", (found.approval_id,))
                    used = cur.fetchone()
                    assert used is not None  # locked above, in this transaction
                    return approval_from_row(used, now)
                return found
            cur.execute(
                "SELECT COUNT(*) FROM approvals WHERE token_id = %s AND state = 'pending' "
                "AND expires > %s",
                (request.token_id, now),
            )
            counted = cur.fetchone()
            pending = int(str(counted[0])) if counted is not None else 0
            if pending >= max_pending:
                raise PendingApprovalsFull(request.token_id, pending, max_pending)
            cur.execute(
                "INSERT INTO approvals (approval_id, token_id, grant_name, digest, state, "
                "created, expires, request, taint) "
                "VALUES (%s, %s, %s, %s, 'pending', %s, %s, %s, %s)",
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
            cur.execute(_SELECT_APPROVALS + " WHERE approval_id = %s", (request.approval_id,))
            stored = cur.fetchone()
            assert stored is not None  # inserted in this transaction
            return approval_from_row(stored, now)

    def decide_approval(
        self, approval_id: str, *, approve: bool, now: float, by: str, note: str | None
    ) -> ApprovalRecord:
        """pending -> approved or denied; ApprovalError otherwise."""
        with self._db.transaction() as cur:
            cur.execute(_SELECT_APPROVALS + " WHERE approval_id = %s FOR UPDATE", (approval_id,))
            row = cur.fetchone()
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
                "UPDATE approvals SET state = %s, decided = %s, decided_by = %s, note = %s, "
                "expires = %s WHERE approval_id = %s AND state = 'pending'",
                (state.value, now, by, note, now + ttl, approval_id),
            )
            cur.execute(_SELECT_APPROVALS + " WHERE approval_id = %s", (approval_id,))
            decided = cur.fetchone()
        assert decided is not None  # locked above, in that transaction
        return approval_from_row(decided, now)

    def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        """One approval, or None."""
        rows = self._read(_SELECT_APPROVALS + " WHERE approval_id = %s", (approval_id,))
        return approval_from_row(rows[0], time.time()) if rows else None

    def list_approvals(self, state: ApprovalState | None = None) -> list[ApprovalRecord]:
        """Approvals, newest first, optionally only those in ``state``."""
        now = time.time()
        rows = self._read(_SELECT_APPROVALS + " ORDER BY created DESC, approval_id")
        found = [approval_from_row(row, now) for row in rows]
        return [a for a in found if state is None or a.state is state]

    # idempotency keys ----------------------------------------------------------------------

    def claim_idempotency(
        self, token_id: str, key: str, digest: str, now: float, ttl: float
    ) -> IdempotencyClaim:
        """NEW (recorded), SAME (a retry of the same request) or CONFLICT."""
        with self._db.transaction() as cur:
            advisory_lock(cur, LOCK_IDEMPOTENCY, f"{token_id}\n{key}")
            cur.execute(
                "SELECT digest FROM idempotency_keys WHERE token_id = %s AND key = %s "
                "AND expires > %s",
                (token_id, key, now),
            )
            row = cur.fetchone()
            if row is not None:
                return IdempotencyClaim.SAME if row[0] == digest else IdempotencyClaim.CONFLICT
            cur.execute(
                "INSERT INTO idempotency_keys (token_id, key, digest, expires) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (token_id, key) DO UPDATE SET "
                "digest = excluded.digest, expires = excluded.expires",
                (token_id, key, digest, now + ttl),
            )
            return IdempotencyClaim.NEW

    # the operator console ----------------------------------------------------------------

    def add_console_login(
        self, code_hash: str, *, issued_by: str, created: float, expires: float
    ) -> None:
        """Store a one-time login code's hash."""
        with self._db.transaction() as cur:
            cur.execute(
                "INSERT INTO console_logins (code_hash, issued_by, created, expires) "
                "VALUES (%s, %s, %s, %s)",
                (code_hash, issued_by, created, expires),
            )

    def redeem_console_login(
        self, code_hash: str, session_hash: str, *, now: float, expires: float
    ) -> ConsoleSession | None:
        """Use the code once and start a session, or None."""
        with self._db.transaction() as cur:
            cur.execute(
                "UPDATE console_logins SET used = %s WHERE code_hash = %s AND used IS NULL "
                "AND expires > %s RETURNING code_hash, issued_by",
                (now, code_hash, now),
            )
            row = cur.fetchone()
            if row is None or not hmac.compare_digest(str(row[0]), code_hash):
                return None
            cur.execute(
                "INSERT INTO console_sessions (session_hash, operator, created, expires) "
                "VALUES (%s, %s, %s, %s)",
                (session_hash, row[1], now, expires),
            )
        return ConsoleSession(str(row[1]), now, expires)

    def get_console_session(self, session_hash: str, now: float) -> ConsoleSession | None:
        """The live session, or None."""
        rows = self._read(
            "SELECT session_hash, operator, created, expires FROM console_sessions "
            "WHERE session_hash = %s AND ended IS NULL AND expires > %s",
            (session_hash, now),
        )
        if not rows or not hmac.compare_digest(str(rows[0][0]), session_hash):
            return None
        return console_session_from_row(rows[0][1:])

    def end_console_session(self, session_hash: str, now: float) -> None:
        """Sign out (idempotent)."""
        with self._db.transaction() as cur:
            cur.execute(
                "UPDATE console_sessions SET ended = COALESCE(ended, %s) WHERE session_hash = %s",
                (now, session_hash),
            )

    def prune(self, now: float) -> None:
        """Drop expired nonces, idempotency keys, console codes and sessions, and spend rows
        older than the window."""
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM console_logins WHERE expires < %s", (now,))
            cur.execute("DELETE FROM console_sessions WHERE expires < %s", (now,))
            cur.execute("DELETE FROM nonces WHERE expires < %s", (now,))
            cur.execute("DELETE FROM idempotency_keys WHERE expires < %s", (now,))
            cur.execute(
                "DELETE FROM spend WHERE created < %s AND state != 'reserved'",
                (now - 2 * WINDOW_S,),
            )

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
