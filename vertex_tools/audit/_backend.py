"""What an audit log storage must do: the seam between the chain and its database.

:class:`~vertex_tools.audit._log.AuditLog` (one SQLite file, the embedded
default) and ``vertex_tools.audit._pglog.PostgresAuditLog`` (the database
shared by broker replicas) both implement :class:`AuditBackend`; the writer,
verification, checkpoints and the CLI use only this.

Every backend keeps these invariants (``_entry`` states the encoding):

1. An append reads the head and inserts after it while holding a lock that
   every other appender, in any process or on any host, must take first: the
   chain never forks, and seqs have no gaps.
2. A batch (``append_many``, the group-commit writer) is one transaction: all
   of its entries are durable, or none is.
3. ``scan`` reads one consistent snapshot: appends made meanwhile are either
   wholly seen or not at all.
4. Database errors surface as ``AuditUnavailable`` naming the log (a URL with
   its password masked), ``from`` the driver's error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from types import MappingProxyType, TracebackType
from typing import Any, Protocol

from vertex_tools.audit._entry import (
    AuditRecord,
    EntryKind,
    chain_hash,
    check_time_us,
    entry_bytes,
)
from vertex_tools.errors import AuditUnavailable

__all__ = ["AuditBackend", "RawRow", "Scan", "chain_rows", "now_us", "written_records"]

RawRow = tuple[int, bytes, bytes, bytes]
"""``(seq, prev_hash, hash, entry)`` exactly as stored, for verification."""

Scan = tuple[int, Iterator[list[RawRow]]]
"""The row count of a snapshot, and its rows in seq order, a batch at a time."""


class AuditBackend(Protocol):
    """An append-only, hash-chained audit log in some database."""

    @property
    def location(self) -> str:
        """Where the log is, for messages (a path, or a URL with the password masked)."""

    def log_id(self) -> bytes:
        """The 16 random bytes made once when the log was created."""

    def head(self) -> tuple[int, bytes]:
        """``(seq, hash)`` of the last entry, or ``(0, GENESIS_HASH)`` when empty."""

    def count(self) -> int:
        """Number of rows in the log."""

    def tail(self, n: int) -> list[AuditRecord]:
        """The last ``n`` records, oldest first (format-checked, not chain-verified)."""

    def records(self, start: int = 1) -> Iterator[AuditRecord]:
        """Records from ``start`` on, in seq order (format-checked, not chain-verified)."""

    def append(self, kind: EntryKind, data: Mapping[str, Any]) -> AuditRecord:
        """Append one entry in its own transaction and return it as stored."""

    def append_many(
        self, items: Sequence[tuple[EntryKind, Mapping[str, Any]]]
    ) -> list[AuditRecord]:
        """Append several entries in one transaction: all or none."""

    def _append_encoded(self, items: Sequence[tuple[EntryKind, str]]) -> list[AuditRecord]:
        """Append entries whose data ``encode_data`` already encoded (the writer's path)."""

    def _scan(self, batch: int) -> AbstractContextManager[Scan]:
        """A consistent snapshot of every row, for verification (invariant 3)."""

    def close(self) -> None:
        """Release the connection; safe to call twice."""

    def __enter__(self) -> AuditBackend:
        """Context manager: closes on exit."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close."""


def now_us(clock: Callable[[], float]) -> int:
    """The clock in whole microseconds; ``AuditUnavailable`` for an impossible time."""
    try:
        time_us = round(clock() * 1_000_000)
    except (TypeError, ValueError, OverflowError) as exc:
        raise AuditUnavailable(f"audit clock failed: {exc}") from exc
    if not check_time_us(time_us):
        raise AuditUnavailable(f"audit clock returned an impossible time ({time_us} us)")
    return time_us


def chain_rows(
    head: tuple[int, bytes], time_us: int, items: Sequence[tuple[EntryKind, str]]
) -> list[RawRow]:
    """The rows that extend ``head`` (seq, hash) with ``items``, in order."""
    seq, prev = head
    rows: list[RawRow] = []
    for kind, data_text in items:
        seq += 1
        entry = entry_bytes(seq, time_us, kind, data_text)
        entry_hash = chain_hash(prev, entry)
        rows.append((seq, prev, entry_hash, entry))
        prev = entry_hash
    return rows


def written_records(
    items: Sequence[tuple[EntryKind, str]], rows: Sequence[RawRow], time_us: int
) -> list[AuditRecord]:
    """The records just written, built from what was written (not decoded back)."""
    return [
        AuditRecord(
            seq=seq,
            time_us=time_us,
            kind=kind,
            data=MappingProxyType(json.loads(data_text)),
            prev_hash=prev,
            hash=entry_hash,
        )
        for (kind, data_text), (seq, prev, entry_hash, _) in zip(items, rows, strict=True)
    ]
