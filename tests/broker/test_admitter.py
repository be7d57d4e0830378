"""The admission group commit (broker/admitter.py) against a real SQLite store on a
real database thread: batches form under concurrency, ceilings hold across them,
and a failed batch refuses every request in it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from vertex_tools.broker.admitter import Admitter
from vertex_tools.errors import StoreError
from vertex_tools.store import Admission, AdmissionResult, SpendRequest, SqliteStore

NOW = 1_800_000_000.0
T = TypeVar("T")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "vertex.db", busy_timeout_s=0.05)
    yield opened
    opened.close()


def _run(
    store: SqliteStore, main: Callable[[Admitter], asyncio.Future[list[object]] | object]
) -> tuple[Admitter, list[object]]:
    executor = ThreadPoolExecutor(max_workers=1)

    def submit(fn: Callable[[], T]) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(executor, fn)

    admitter = Admitter(submit, store.admit_many, max_batch=16)

    async def go() -> list[object]:
        results: list[object] = await main(admitter)  # type: ignore[misc]
        return results

    try:
        return admitter, asyncio.run(go())
    finally:
        executor.shutdown(wait=True)


def test_concurrent_admissions_are_batched_and_never_pass_the_ceiling(
    store: SqliteStore,
) -> None:
    spend = SpendRequest("g", "usd", 10, 500, "grants.g.spend")

    async def main(admitter: Admitter) -> list[AdmissionResult]:
        return await asyncio.gather(
            *(admitter.admit(Admission("t", NOW, spend=spend)) for _ in range(100))
        )

    admitter, results = _run(store, main)
    admitted = [r for r in results if isinstance(r, AdmissionResult) and r.admitted]
    assert len(admitted) == 50
    assert len({r.reservation for r in admitted}) == 50
    assert store.spend_used("g", "usd", NOW - 1) == 500
    assert 100 // 16 < admitter.committed_batches < 100


def test_a_failed_batch_refuses_every_request_in_it(store: SqliteStore) -> None:
    holder = sqlite3.connect(store.path, isolation_level=None)

    async def main(admitter: Admitter) -> list[object]:
        holder.execute("BEGIN EXCLUSIVE")
        try:
            failed = await asyncio.gather(
                *(admitter.admit(Admission("t", NOW)) for _ in range(10)),
                return_exceptions=True,
            )
        finally:
            holder.execute("ROLLBACK")
        # The admitter goes on after a failed batch.
        after = await admitter.admit(Admission("t", NOW))
        return [*failed, after]

    try:
        _, results = _run(store, main)
    finally:
        holder.close()
    errors = results[:10]
    assert all(isinstance(e, StoreError) and "locked" in str(e) for e in errors)
    assert len({id(e) for e in errors}) == 10  # one exception per caller
    last = results[10]
    assert isinstance(last, AdmissionResult) and last.admitted


def test_invalid_max_batch(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Admitter(lambda fn: asyncio.Future(), store.admit_many, max_batch=0)
