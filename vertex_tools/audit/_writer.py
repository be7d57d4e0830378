"""Group commit for the broker's event loop.

One SQLite commit with ``synchronous=FULL`` costs an fsync (a few thousand per
second); one commit of many rows costs about the same, and so does one round
trip to PostgreSQL. So callers on the event loop put their entries on a queue,
and one thread with its own log connection (any ``AuditBackend``) writes
everything pending (up to ``max_batch``) in one transaction, then resolves each
caller's future on its loop. With several broker replicas, each has its own
writer; the backend's head lock keeps their batches in one linear chain.

Guarantees:

- A caller's future resolves only after its entry is committed.
- If a batch fails, every caller in it gets ``AuditUnavailable`` and none of
  its entries is written (the batch is one transaction).
- Data that is not plain JSON fails its own caller at once, on the loop,
  and never reaches a batch.
- ``aclose()`` writes everything already queued, then stops the thread:
  entries queued with ``submit()`` that nobody awaited included.
- An entry whose caller was cancelled is still written: the intent it records
  may already be acted on.
- A deferred entry (``submit(..., defer=True)``, nobody waits for it) may wait
  up to ``defer_s`` for another entry to share its commit; an entry someone
  awaits never waits for company.
- A deferred entry whose batch fails because the log is unavailable is kept and
  written with a later batch (retried with backoff, and at ``aclose()``): a
  database blip just after an answer loses no outcome entry. Only when the log
  is still unavailable at ``aclose()``, or more than ``_MAX_CARRY`` such entries
  are waiting, does its future get ``AuditUnavailable`` (and the broker logs it).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from vertex_tools.audit._backend import AuditBackend
from vertex_tools.audit._entry import AuditRecord, EntryKind, encode_data
from vertex_tools.audit._log import AuditLog
from vertex_tools.errors import AuditUnavailable

__all__ = ["AsyncAuditWriter"]

_logger = logging.getLogger(__name__)

_RETRY_FIRST_S = 0.05
_RETRY_MAX_S = 2.0
_CLOSE_TRIES = 3
_MAX_CARRY = 50_000
"""Deferred entries kept for retry at most; past it the oldest are given up (and said so)."""


@dataclass(frozen=True, slots=True)
class _Pending:
    kind: EntryKind
    data_text: str
    future: asyncio.Future[AuditRecord]
    loop: asyncio.AbstractEventLoop
    deferred: bool = False


class _State(Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


def _set_result(future: asyncio.Future[AuditRecord], record: AuditRecord) -> None:
    if not future.done():  # the caller may have been cancelled meanwhile
        future.set_result(record)


def _set_exception(future: asyncio.Future[AuditRecord], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class AsyncAuditWriter:
    """Appends from asyncio code, group-committed by one writer thread.

    Use from one event loop: ``start()``, then ``await append(...)`` from any
    number of tasks, then ``await aclose()``. ``committed_batches`` counts the
    transactions committed, so batching can be observed.
    """

    def __init__(
        self,
        path: Path | Callable[[], AuditBackend],
        *,
        clock: Callable[[], float] = time.time,
        max_batch: int = 512,
        busy_timeout_s: float = 5.0,
        label: str | None = None,
        defer_s: float = 0.0,
    ) -> None:
        """Configure the writer; nothing is opened until ``start()``.

        ``path`` is a SQLite log file, or a function that opens any backend
        (called once, in the writer thread, which then owns the connection);
        ``label`` names it in messages (never a password). ``defer_s`` is how
        long a batch of deferred entries alone may wait for company (0: never).
        """
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, not {max_batch}")
        if not 0 <= defer_s <= 1:
            raise ValueError(f"defer_s must be between 0 and 1 second, not {defer_s}")
        self._defer_s = defer_s
        if isinstance(path, Path | str):
            self._path = Path(path)
            self._opener: Callable[[], AuditBackend] | None = None
            self._label = str(self._path)
        else:
            self._path = Path()
            self._opener = path
            self._label = label or "the audit log"
        self._clock = clock
        self._max_batch = max_batch
        self._busy_timeout_s = busy_timeout_s
        # None is the stop sentinel; FIFO order means it follows every entry
        # queued before aclose().
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._state = _State.NEW
        self._open_error: AuditUnavailable | None = None
        self._committed_batches = 0
        self._committed_entries = 0

    @property
    def committed_batches(self) -> int:
        """Transactions committed so far (each holds one or more entries)."""
        return self._committed_batches

    @property
    def committed_entries(self) -> int:
        """Entries committed so far."""
        return self._committed_entries

    def start(self) -> None:
        """Open the log in the writer thread and start it.

        Blocks until the log is open, and raises ``AuditUnavailable`` if it
        cannot be, so a broker fails at startup rather than on its first call.
        """
        if self._state is not _State.NEW:
            raise RuntimeError(f"AsyncAuditWriter is {self._state.value}; start() runs once")
        ready = threading.Event()
        thread = threading.Thread(
            target=self._run,
            args=(ready,),
            name=f"vertex-audit-writer:{self._path.name or 'db'}",
            # A forgotten aclose() must not hang interpreter exit; SQLite's
            # transaction makes a batch cut short at exit all-or-nothing.
            daemon=True,
        )
        thread.start()
        ready.wait()
        if self._open_error is not None:
            thread.join()
            self._state = _State.CLOSED
            raise self._open_error
        self._thread = thread
        self._state = _State.RUNNING

    async def append(self, kind: EntryKind, data: Mapping[str, Any]) -> AuditRecord:
        """Queue an entry and return it once it is committed.

        Raises ``TypeError``/``ValueError`` for data that is not plain JSON, and
        ``AuditUnavailable`` if the writer is not running or the batch failed.
        """
        return await self.submit(kind, data)

    def submit(
        self, kind: EntryKind, data: Mapping[str, Any], *, defer: bool = False
    ) -> asyncio.Future[AuditRecord]:
        """Queue an entry now; the returned future resolves once it is committed.

        For an entry nothing needs to wait for (the broker's outcome entries):
        it is queued at once, in order after every entry queued before it, and
        ``aclose()`` writes it before the writer stops. Whoever does not await
        the future must still read it (a done callback): a failed batch sets
        ``AuditUnavailable`` on it. Raises like ``append`` when the entry cannot
        be queued at all. ``defer=True``: its commit may wait up to the writer's
        ``defer_s`` to share a flush with the next entry.
        """
        kind = EntryKind(kind)
        data_text = encode_data(data)
        # Checked and queued with no await in between, so aclose() (on the same
        # loop) cannot slip its sentinel ahead of this entry.
        if self._state is not _State.RUNNING:
            raise AuditUnavailable(
                f"audit writer for {self._label} is {self._state.value}, not running"
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AuditRecord] = loop.create_future()
        self._queue.put(_Pending(kind, data_text, future, loop, defer))
        return future

    async def aclose(self) -> None:
        """Write everything queued, then stop the thread and close the log."""
        thread = self._thread
        if self._state is _State.RUNNING:
            self._state = _State.CLOSING
            self._queue.put(None)
        if thread is not None:
            await asyncio.to_thread(thread.join)
        self._state = _State.CLOSED

    # -- the writer thread ----------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        try:
            log: AuditBackend = (
                self._opener()
                if self._opener is not None
                else AuditLog(self._path, clock=self._clock, busy_timeout_s=self._busy_timeout_s)
            )
        except AuditUnavailable as exc:
            self._open_error = exc
            ready.set()
            return
        ready.set()
        try:
            carry: list[_Pending] = []  # deferred entries whose batch failed
            delay = _RETRY_FIRST_S
            stopping = False
            while not stopping:
                if carry:
                    try:
                        first = self._queue.get(timeout=delay)
                    except queue.Empty:
                        first = _RETRY
                else:
                    first = self._queue.get()
                if first is None:
                    break
                batch = carry + ([] if first is _RETRY else [first])
                stopping = self._gather(batch)
                carry = self._write(log, batch, keep_deferred=True)
                delay = min(delay * 2, _RETRY_MAX_S) if carry else _RETRY_FIRST_S
            for attempt in range(_CLOSE_TRIES):
                if not carry:
                    break
                if attempt:
                    time.sleep(_RETRY_FIRST_S * 2**attempt)
                carry = self._write(log, carry, keep_deferred=attempt < _CLOSE_TRIES - 1)
        finally:
            log.close()

    def _gather(self, batch: list[_Pending]) -> bool:
        """Add what else is queued to ``batch``; True when the stop sentinel was met.

        A batch of deferred entries only (``submit(..., defer=True)``) waits up to
        ``defer_s`` for an entry someone awaits, and then shares its commit: at
        low load an outcome and the next request's intent cost one flush, not two.
        """
        deadline: float | None = None
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                if self._defer_s <= 0 or not all(pending.deferred for pending in batch):
                    return False
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._defer_s
                if now >= deadline:
                    return False
                try:
                    item = self._queue.get(timeout=deadline - now)
                except queue.Empty:
                    return False
            if item is None:
                return True
            batch.append(item)
        return False

    def _write(
        self, log: AuditBackend, batch: list[_Pending], *, keep_deferred: bool
    ) -> list[_Pending]:
        """Commit ``batch`` and settle its futures. Returns the deferred entries kept
        for a later try (``keep_deferred``) when the log was unavailable, else []."""
        try:
            records = log._append_encoded([(item.kind, item.data_text) for item in batch])
        except AuditUnavailable as exc:
            failure: AuditUnavailable = exc
            retry = keep_deferred
        except Exception as exc:  # noqa: BLE001 - delivered to every caller below
            # Anything else is a bug, but the callers are waiting on this batch:
            # they must hear that nothing was recorded, and the thread must live.
            # Not retried: the same entries would fail the same way.
            failure = AuditUnavailable(f"audit writer for {self._label} failed: {exc!r}")
            failure.__cause__ = exc
            retry = False
        else:
            self._committed_batches += 1
            self._committed_entries += len(records)
            self._deliver(
                [(item, _set_result, record) for item, record in zip(batch, records, strict=True)]
            )
            return []
        kept = [item for item in batch if item.deferred] if retry else []
        if len(kept) > _MAX_CARRY:
            kept = kept[-_MAX_CARRY:]
        if kept:
            _logger.warning(
                "%s unavailable (%s): %d entries nobody waits for are kept to retry",
                self._label,
                failure,
                len(kept),
            )
        keep = {id(item) for item in kept}
        results: list[_Result] = []
        for item in batch:
            if id(item) in keep:
                continue
            # A fresh exception per caller: one instance raised in many tasks
            # would collect all of their tracebacks.
            error = AuditUnavailable(str(failure))
            error.__cause__ = failure.__cause__ or failure
            results.append((item, _set_exception, error))
        if results:
            self._deliver(results)
        return kept

    def _deliver(self, results: list[_Result]) -> None:
        """Hand a batch's results to their loops: one wake-up per loop, not per entry
        (each ``call_soon_threadsafe`` writes to the loop's self-pipe)."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Result]] = {}
        for result in results:
            by_loop.setdefault(result[0].loop, []).append(result)
        for loop, some in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_all, some)
            except RuntimeError:
                # The caller's loop is closed: nobody is waiting for these results.
                _logger.warning(
                    "audit results for %s not delivered: event loop closed", self._label
                )


_Result = tuple[_Pending, Callable[[asyncio.Future[AuditRecord], Any], None], Any]

_RETRY: Any = object()
"""What the writer thread takes instead of a queued entry when it is time to retry."""


def _settle_all(results: list[_Result]) -> None:
    for item, setter, value in results:
        setter(item.future, value)
