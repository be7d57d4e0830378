"""Rows of the state tables as values: shared by the SQLite and PostgreSQL stores, so
a token or an approval reads back the same whatever holds it."""

from __future__ import annotations

import json

from vertex_tools.store.base import ApprovalRecord, ApprovalState, ConsoleSession
from vertex_tools.tokens import TokenRecord

__all__ = ["approval_from_row", "console_session_from_row", "token_from_row"]


def _opt_float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def token_from_row(row: tuple[object, ...]) -> TokenRecord:
    """(token_id, grant_name, public_key, verifier, created, expires, revoked, last_used)."""
    token_id, grant, public_key, verifier, created, expires, revoked, last_used = row
    return TokenRecord(
        token_id=str(token_id),
        grant=str(grant),
        public_key=bytes(public_key) if isinstance(public_key, bytes | memoryview) else b"",
        verifier=bytes(verifier) if isinstance(verifier, bytes | memoryview) else b"",
        created=_opt_float(created) or 0.0,
        expires=_opt_float(expires) or 0.0,
        revoked=_opt_float(revoked),
        last_used=_opt_float(last_used),
    )


def approval_from_row(row: tuple[object, ...], now: float) -> ApprovalRecord:
    """An approvals row; PENDING or APPROVED past ``expires`` reads as EXPIRED."""
    (approval_id, token_id, grant, digest, state, created, expires, request, taint,
     decided, decided_by, note, used) = row  # fmt: skip
    current = ApprovalState(str(state))
    if current in (ApprovalState.PENDING, ApprovalState.APPROVED) and float(str(expires)) <= now:
        current = ApprovalState.EXPIRED
    return ApprovalRecord(
        approval_id=str(approval_id),
        token_id=str(token_id),
        grant=str(grant),
        digest=str(digest),
        state=current,
        created=float(str(created)),
        expires=float(str(expires)),
        request=json.loads(str(request)),
        taint=tuple(json.loads(str(taint))),
        decided=_opt_float(decided),
        decided_by=None if decided_by is None else str(decided_by),
        note=None if note is None else str(note),
        used=_opt_float(used),
    )


def console_session_from_row(row: tuple[object, ...]) -> ConsoleSession:
    """(operator, created, expires) of ``console_sessions``."""
    operator, created, expires = row
    return ConsoleSession(str(operator), float(str(created)), float(str(expires)))
