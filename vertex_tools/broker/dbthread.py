"""The broker's database thread: one thread that owns the state store's and the
vault's connections, fed by a queue.

It replaces a one-worker ``ThreadPoolExecutor`` driven by ``run_in_executor``,
which for every call built a ``concurrent.futures.Future``, chained it to an
asyncio future and woke the event loop once per result (a write to the
loop's self-pipe). Here the thread runs jobs in arrival order, one at a time,
and hands results back to the loop through one list: a wake-up is scheduled
only when none is already pending, so results that finish while the loop is
busy arrive together, on one wake-up.

Guarantees (as with the executor it replaces):

* jobs run one at a time, in submission order, on the one thread;
* a job's future gets its return value or its exception, on the loop that
  submitted it; a future whose caller was cancelled is left alone;
* ``submit`` after ``shutdown`` raises ``RuntimeError``; ``shutdown`` runs
  every job submitted before it, then stops the thread.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["DbThread"]

log = logging.getLogger("vertex_tools.broker")
T = TypeVar("T")

_Job = tuple[Callable[[], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]
_Done = tuple["asyncio.Future[Any]", bool, Any]


class DbThread:
    """Runs blocking functions on one dedicated thread; ``submit`` returns an asyncio future."""

    def __init__(self, name: str = "vertex-db") -> None:
        self._name = name
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        # Per loop: results not yet handed over, and whether a wake-up is pending.
        self._ready: dict[asyncio.AbstractEventLoop, list[_Done]] = {}

    def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Queue ``fn`` for the thread; the future resolves with its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new work after shutdown")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._queue.put((fn, future, loop))
        return future

    def shutdown(self) -> None:
        """Run what is queued, then stop the thread (blocks until it has)."""
        with self._lock:
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            fn, future, loop = job
            try:
                done: _Done = (future, True, fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, as an executor does
                done = (future, False, exc)
            self._hand_over(loop, done)

    def _hand_over(self, loop: asyncio.AbstractEventLoop, done: _Done) -> None:
        with self._lock:
            pending = self._ready.get(loop)
            if pending is not None:  # a wake-up is already on its way: ride along
                pending.append(done)
                return
            self._ready[loop] = [done]
        try:
            loop.call_soon_threadsafe(self._deliver, loop)
        except RuntimeError:  # the loop is closed: nobody waits for these results
            with self._lock:
                self._ready.pop(loop, None)
            log.warning("database results not delivered: event loop closed")

    def _deliver(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            results = self._ready.pop(loop, [])
        for future, ok, value in results:
            if future.done():  # the caller was cancelled meanwhile
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
