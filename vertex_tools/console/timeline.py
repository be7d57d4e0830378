"""The audit timeline and the chain's verify status, read from the real audit log.

Rows are built from the log's newest entries: an intent (a call's decision) with the
status of its outcome, or an admin entry (token, approval, console and policy
actions). Everything in a row is data from the log: the pages escape it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vertex_tools.audit import CheckpointKey, EntryKind, read_checkpoint, verify_log
from vertex_tools.audit._backend import AuditBackend
from vertex_tools.audit._entry import format_time_us
from vertex_tools.errors import AuditError, VertexError

__all__ = ["ChainMonitor", "ChainStatus", "Filters", "Row", "timeline"]

SCAN = 5000
"""Newest entries searched for a page of the timeline."""
LIMIT = 200
"""Rows shown."""
DECISIONS = ("allow", "deny", "approve", "admin")


@dataclass(frozen=True, slots=True)
class Filters:
    """The timeline's filters, from the page's query string (empty: no filter)."""

    token: str = ""
    grant: str = ""
    decision: str = ""
    reason: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Filters:
        """Read ``token``, ``grant``, ``decision`` and ``reason``; other keys are ignored."""
        return cls(
            token=query.get("token", "").strip()[:64],
            grant=query.get("grant", "").strip()[:128],
            decision=query.get("decision", "").strip()[:16],
            reason=query.get("reason", "").strip()[:64],
        )

    def matches(self, row: Row) -> bool:
        """Whether ``row`` passes every filter that is set."""
        return (
            (not self.token or row.token == self.token)
            and (not self.grant or row.grant == self.grant)
            and (not self.decision or row.decision == self.decision)
            and (not self.reason or row.reason == self.reason)
        )


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the timeline."""

    seq: int
    time: str
    kind: str
    decision: str
    """allow, deny, approve (held) for a call; admin for an operator action."""
    reason: str
    """The decision's reason code, or the admin action."""
    request: str
    token: str
    grant: str
    status: str
    message: str

    def to_json(self) -> dict[str, Any]:
        """For the page's live updates."""
        return asdict(self)


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _row(
    record_seq: int, time_us: int, kind: EntryKind, data: Mapping[str, Any], status: str
) -> Row:
    stamp = format_time_us(time_us)[:19].replace("T", " ")
    if kind is EntryKind.INTENT:
        request = (
            f"{_text(data.get('method'))} {_text(data.get('upstream'))}{_text(data.get('path'))}"
        )
        return Row(
            record_seq,
            stamp,
            kind.value,
            _text(data.get("effect")),
            _text(data.get("reason")),
            request.strip(),
            _text(data.get("token_id")),
            _text(data.get("grant")),
            status,
            _text(data.get("message")),
        )
    rest = {k: v for k, v in data.items() if k not in ("action", "actor", "token_id", "grant")}
    detail = ", ".join(f"{k}={v}" for k, v in sorted(rest.items()) if v is not None)
    return Row(
        record_seq,
        stamp,
        kind.value,
        "admin",
        _text(data.get("action")),
        "",
        _text(data.get("token_id")),
        _text(data.get("grant")),
        "",
        (f"by {_text(data.get('actor'))}; " if data.get("actor") else "") + detail[:300],
    )


def timeline(log: AuditBackend, filters: Filters) -> tuple[list[Row], int]:
    """The newest rows passing ``filters`` (newest first), and the log's head seq."""
    records = log.tail(SCAN)
    statuses: dict[str, str] = {}
    for record in records:
        if record.kind is EntryKind.OUTCOME:
            statuses[_text(record.data.get("request_id"))] = _text(record.data.get("status"))
    rows: list[Row] = []
    for record in reversed(records):
        if record.kind is EntryKind.OUTCOME:
            continue
        status = statuses.get(_text(record.data.get("request_id")), "")
        row = _row(record.seq, record.time_us, record.kind, record.data, status)
        if filters.matches(row):
            rows.append(row)
            if len(rows) >= LIMIT:
                break
    head = records[-1].seq if records else 0
    return rows, head


@dataclass(frozen=True, slots=True)
class ChainStatus:
    """The outcome of the last full verification of the log."""

    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    checked: float
    error: str = ""
    checkpoint_seq: int | None = None
    checkpoint_head: str = ""
    checkpoint_time: str = ""
    checkpoint_note: str = ""

    def to_json(self) -> dict[str, Any]:
        """For the page's live updates."""
        return asdict(self)


def check_chain(
    open_log: Callable[[], AuditBackend], checkpoint: Path, public_key: Path
) -> ChainStatus:
    """Verify the whole log (``vertex audit verify``), against the last checkpoint
    ``vertex audit checkpoint`` recorded when there is one."""
    now = time.time()
    cp = None
    note = "no checkpoint recorded yet: run `vertex audit checkpoint --out FILE`"
    if checkpoint.exists():
        try:
            cp = read_checkpoint(checkpoint)
            key = CheckpointKey.load_public(public_key)
        except VertexError as exc:
            return ChainStatus(False, 0, 0, "", now, error=f"last checkpoint unusable: {exc}")
        note = f"checked against {checkpoint.name}"
    else:
        key = None
    cp_fields: dict[str, Any] = {"checkpoint_note": note}
    if cp is not None:
        cp_fields.update(
            checkpoint_seq=cp.seq,
            checkpoint_head=cp.head_hash.hex(),
            checkpoint_time=format_time_us(cp.time_us)[:19].replace("T", " ") + " UTC",
        )
    try:
        with open_log() as log:
            report = verify_log(log, checkpoint=cp, public_key=key)
    except AuditError as exc:
        return ChainStatus(False, 0, 0, "", now, error=str(exc), **cp_fields)
    return ChainStatus(
        True, report.entries, report.head_seq, report.head_hash.hex(), now, **cp_fields
    )


class ChainMonitor:
    """Verification off the event loop, at most one at a time, reused for ``max_age``
    seconds: a poll every second must not re-read the whole log every second.

    A long log takes long to verify (about 16 s per million entries): the next run
    waits at least ``IDLE_FACTOR`` times as long as the last one took, counted from
    when it ended, so an open console keeps at most a fraction of a core busy instead
    of verifying back to back."""

    IDLE_FACTOR = 4.0

    def __init__(self, check: Callable[[], ChainStatus], *, max_age: float = 5.0) -> None:
        self._check = check
        self._max_age = max_age
        self._last: ChainStatus | None = None
        self._fresh_until = 0.0
        self._task: asyncio.Task[ChainStatus] | None = None

    async def status(self, *, wait: float = 2.0) -> ChainStatus | None:
        """The newest result; starts a verification when the last is stale and waits up
        to ``wait`` seconds for it (None: the first one is still running)."""
        last = self._last
        if last is not None and time.monotonic() < self._fresh_until:
            return last
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        try:
            return await asyncio.wait_for(asyncio.shield(self._task), wait)
        except TimeoutError:
            return self._last

    async def _run(self) -> ChainStatus:
        started = time.monotonic()
        try:
            result = await asyncio.to_thread(self._check)
        finally:
            self._task = None
        ended = time.monotonic()
        self._fresh_until = ended + max(self._max_age, self.IDLE_FACTOR * (ended - started))
        self._last = result
        return result
