"""Group commit for step 3 (admit): many concurrent requests, one transaction.

Every request's admission (nonce, rate, spend) is a write transaction in the
state store, and the store takes them one at a time on the database thread.
With ``synchronous=FULL`` each cost a disk flush, so under load requests
queued behind each other's flushes. Here, admissions that arrive while a
batch is being written wait on the event loop and go together in the next
one (``StateStore.admit_many``), the way the audit writer batches entries.

Invariants:

* a request's future resolves only after its admission is committed;
* admissions are checked in arrival order inside one transaction, each
  seeing what the earlier ones took, so a batch passes no ceiling that the
  same admissions one at a time would not;
* if a batch fails, every request in it gets its own ``StoreError`` (and is
  refused by the pipeline); nothing is half-admitted;
* at most one batch is in flight, so batches commit in arrival order.

Use from one event loop (the broker's).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from vertex_tools.errors import StoreError
from vertex_tools.store import Admission, AdmissionResult

__all__ = ["Admitter"]

log = logging.getLogger("vertex_tools.broker")

AdmitMany = Callable[[Sequence[Admission]], list[AdmissionResult]]
Submit = Callable[[Callable[[], list[AdmissionResult]]], "asyncio.Future[list[AdmissionResult]]"]


class Admitter:
    """Batches admissions onto the database thread.

    ``submit`` runs a function on the thread that owns the store's connection
    and returns a future (``Runtime.db``); ``admit_many`` is the store's.
    ``max_batch`` bounds one transaction; ``committed_batches`` counts them,
    so batching can be observed.
    """

    def __init__(self, submit: Submit, admit_many: AdmitMany, *, max_batch: int = 256) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, not {max_batch}")
        self._submit = submit
        self._admit_many = admit_many
        self._max_batch = max_batch
        self._waiting: list[tuple[Admission, asyncio.Future[AdmissionResult]]] = []
        self._in_flight = False
        self.committed_batches = 0

    async def admit(self, admission: Admission) -> AdmissionResult:
        """Admit one request with whatever else is waiting; ``StoreError`` if the batch failed."""
        future: asyncio.Future[AdmissionResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((admission, future))
        if not self._in_flight:
            self._next()
        return await future

    def _next(self) -> None:
        batch = self._waiting[: self._max_batch]
        del self._waiting[: self._max_batch]
        if not batch:
            self._in_flight = False
            return
        self._in_flight = True
        admissions = [admission for admission, _ in batch]
        try:
            done = self._submit(lambda: self._admit_many(admissions))
        except RuntimeError as exc:  # the executor is shut down: the broker is stopping
            self._fail(batch, StoreError(f"the state database is closed: {exc}"))
            self._next()
            return
        done.add_done_callback(lambda finished: self._deliver(batch, finished))

    def _deliver(
        self,
        batch: list[tuple[Admission, asyncio.Future[AdmissionResult]]],
        finished: asyncio.Future[list[AdmissionResult]],
    ) -> None:
        try:
            results = finished.result()
            if len(results) != len(batch):
                raise StoreError(f"{len(results)} admission results for {len(batch)} requests")
        except StoreError as exc:
            self._fail(batch, exc)
        except BaseException as exc:  # noqa: BLE001 - a bug or cancellation: every caller hears
            log.error("admission batch failed unexpectedly: %r", exc)
            self._fail(batch, StoreError(f"admission failed: {exc!r}"))
        else:
            self.committed_batches += 1
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():  # the caller may have been cancelled meanwhile
                    future.set_result(result)
        self._next()

    @staticmethod
    def _fail(
        batch: list[tuple[Admission, asyncio.Future[AdmissionResult]]], exc: StoreError
    ) -> None:
        for _, future in batch:
            if not future.done():
                # A fresh exception per caller: one instance raised in many tasks
                # would collect all of their tracebacks.
                error = StoreError(str(exc))
                error.__cause__ = exc.__cause__ or exc
                future.set_exception(error)
