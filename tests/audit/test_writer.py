"""AsyncAuditWriter: group commit from an event loop, failing closed per batch."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tests.audit.conftest import FakeClock
from vertex_tools.audit import AsyncAuditWriter, AuditLog, AuditRecord, EntryKind, verify_log
from vertex_tools.errors import AuditUnavailable


def test_concurrent_appends_are_group_committed(log_path: Path, clock: FakeClock) -> None:
    writer = AsyncAuditWriter(log_path, clock=clock)

    async def main() -> list[AuditRecord]:
        writer.start()
        try:
            return await asyncio.gather(
                *(writer.append(EntryKind.INTENT, {"call": i}) for i in range(200))
            )
        finally:
            await writer.aclose()

    records = asyncio.run(main())
    assert sorted(r.seq for r in records) == list(range(1, 201))
    assert sorted(r.data["call"] for r in records) == list(range(200))
    assert writer.committed_entries == 200
    assert 1 <= writer.committed_batches < 200
    with AuditLog(log_path, read_only=True) as log:
        assert verify_log(log).entries == 200
        # Each caller got back exactly what is stored at its seq.
        stored = {r.seq: r for r in log.records()}
    assert all(stored[r.seq] == r for r in records)


def test_max_batch_bounds_each_transaction(log_path: Path) -> None:
    writer = AsyncAuditWriter(log_path, max_batch=7)

    async def main() -> None:
        writer.start()
        await asyncio.gather(*(writer.append(EntryKind.OUTCOME, {"i": i}) for i in range(50)))
        await writer.aclose()

    asyncio.run(main())
    assert writer.committed_batches >= 50 // 7 + 1
    with AuditLog(log_path, read_only=True) as log:
        assert verify_log(log).entries == 50


def test_aclose_writes_everything_queued(log_path: Path) -> None:
    writer = AsyncAuditWriter(log_path)

    async def main() -> list[asyncio.Task[AuditRecord]]:
        writer.start()
        tasks = [asyncio.create_task(writer.append(EntryKind.ADMIN, {"i": i})) for i in range(30)]
        await asyncio.sleep(0)  # let every task queue its entry
        await writer.aclose()
        await asyncio.gather(*tasks)
        return tasks

    tasks = asyncio.run(main())
    assert all(task.done() and not task.exception() for task in tasks)
    with AuditLog(log_path, read_only=True) as log:
        assert log.count() == 30


def test_a_failed_batch_fails_every_caller_in_it(log_path: Path) -> None:
    AuditLog(log_path).close()
    writer = AsyncAuditWriter(log_path, busy_timeout_s=0.05)
    holder = sqlite3.connect(log_path, isolation_level=None)

    async def main() -> tuple[list[AuditRecord | BaseException], AuditRecord]:
        writer.start()
        holder.execute("BEGIN EXCLUSIVE")
        try:
            results = await asyncio.gather(
                *(writer.append(EntryKind.INTENT, {"i": i}) for i in range(20)),
                return_exceptions=True,
            )
        finally:
            holder.execute("ROLLBACK")
        # The thread survives a failed batch.
        after = await writer.append(EntryKind.INTENT, {"after": True})
        await writer.aclose()
        return results, after

    results, after = asyncio.run(main())
    errors = [result for result in results if isinstance(result, AuditUnavailable)]
    assert len(errors) == 20
    assert all("database is locked" in str(error) for error in errors)
    # One exception object per caller, each caused by the SQLite error.
    assert len({id(error) for error in errors}) == 20
    assert all(isinstance(error.__cause__, sqlite3.OperationalError) for error in errors)
    assert after.seq == 1
    assert writer.committed_batches == 1


def test_bad_data_fails_only_its_caller(log_path: Path) -> None:
    writer = AsyncAuditWriter(log_path)

    async def main() -> AuditRecord:
        writer.start()
        with pytest.raises(TypeError, match=r"data\['amount'\] is a float"):
            await writer.append(EntryKind.INTENT, {"amount": 1.5})
        record = await writer.append(EntryKind.INTENT, {"amount": 150})
        await writer.aclose()
        return record

    assert asyncio.run(main()).seq == 1


def test_append_when_not_running_is_unavailable(log_path: Path) -> None:
    writer = AsyncAuditWriter(log_path)

    async def main() -> None:
        with pytest.raises(AuditUnavailable, match="is new, not running"):
            await writer.append(EntryKind.ADMIN, {})
        writer.start()
        await writer.aclose()
        with pytest.raises(AuditUnavailable, match="is closed, not running"):
            await writer.append(EntryKind.ADMIN, {})
        await writer.aclose()  # closing twice is harmless

    asyncio.run(main())
    with pytest.raises(RuntimeError, match="start\\(\\) runs once"):
        writer.start()


def test_start_fails_when_the_log_cannot_be_opened(tmp_path: Path) -> None:
    writer = AsyncAuditWriter(tmp_path / "missing-dir" / "audit.db")
    with pytest.raises(AuditUnavailable, match="cannot open audit log"):
        writer.start()


def test_invalid_max_batch() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        AsyncAuditWriter(Path("unused.db"), max_batch=0)


def test_a_submitted_entry_nobody_awaits_is_written_by_aclose(log_path: Path) -> None:
    # The broker's outcome entries: queued, the answer sent, committed afterwards.
    writer = AsyncAuditWriter(log_path)

    async def main() -> list[asyncio.Future[AuditRecord]]:
        writer.start()
        first = await writer.append(EntryKind.INTENT, {"request_id": "r"})
        pending = [writer.submit(EntryKind.OUTCOME, {"request_id": "r", "i": i}) for i in range(5)]
        await writer.aclose()  # no await on the futures before closing
        await asyncio.sleep(0.01)  # let the writer's results reach the loop
        assert first.seq == 1
        return pending

    pending = asyncio.run(main())
    assert [f.result().seq for f in pending] == [2, 3, 4, 5, 6]
    with AuditLog(log_path, read_only=True) as log:
        assert [r.kind for r in log.records()] == [EntryKind.INTENT] + [EntryKind.OUTCOME] * 5
        assert verify_log(log).entries == 6


def test_a_deferred_entry_shares_the_next_commit_or_is_written_alone(log_path: Path) -> None:
    writer = AsyncAuditWriter(log_path, defer_s=1.0)

    async def main() -> None:
        writer.start()
        # An outcome nobody waits for, then the next request's intent: one commit.
        outcome = writer.submit(EntryKind.OUTCOME, {"request_id": "a"}, defer=True)
        intent = await writer.append(EntryKind.INTENT, {"request_id": "b"})
        assert (await outcome).seq == 1 and intent.seq == 2
        assert writer.committed_batches == 1
        # Alone, it is still written once defer_s has passed.
        alone = writer.submit(EntryKind.OUTCOME, {"request_id": "b"}, defer=True)
        assert (await alone).seq == 3
        # And aclose() does not wait for company: it writes what is queued at once.
        writer.submit(EntryKind.OUTCOME, {"request_id": "c"}, defer=True)
        await writer.aclose()

    asyncio.run(main())
    with AuditLog(log_path, read_only=True) as log:
        assert verify_log(log).entries == 4


def test_invalid_defer() -> None:
    with pytest.raises(ValueError, match="defer_s"):
        AsyncAuditWriter(Path("unused.db"), defer_s=-1)


def test_a_deferred_entry_outlives_a_failed_batch_and_is_written_later(log_path: Path) -> None:
    # An outcome queued just before the log became unavailable: the intent awaited
    # with it fails (503 for that call), the outcome is kept and written once the
    # log is back, and the chain stays whole.
    AuditLog(log_path).close()
    writer = AsyncAuditWriter(log_path, busy_timeout_s=0.05, defer_s=0.01)
    holder = sqlite3.connect(log_path, isolation_level=None)

    async def main() -> tuple[AuditRecord, BaseException | AuditRecord]:
        writer.start()
        holder.execute("BEGIN EXCLUSIVE")
        outcome = writer.submit(EntryKind.OUTCOME, {"request_id": "a"}, defer=True)
        intent = await asyncio.gather(
            writer.append(EntryKind.INTENT, {"request_id": "b"}), return_exceptions=True
        )
        await asyncio.sleep(0.3)  # a few retries against the held lock
        assert not outcome.done()
        holder.execute("ROLLBACK")
        record = await asyncio.wait_for(outcome, 10)
        await writer.aclose()
        return record, intent[0]

    record, intent = asyncio.run(main())
    assert isinstance(intent, AuditUnavailable)
    assert record.seq == 1 and record.kind is EntryKind.OUTCOME
    with AuditLog(log_path, read_only=True) as log:
        assert [dict(r.data) for r in log.records()] == [{"request_id": "a"}]
        assert verify_log(log).entries == 1


def test_a_deferred_entry_the_log_never_takes_fails_at_close(log_path: Path) -> None:
    AuditLog(log_path).close()
    writer = AsyncAuditWriter(log_path, busy_timeout_s=0.05)
    holder = sqlite3.connect(log_path, isolation_level=None)

    async def main() -> asyncio.Future[AuditRecord]:
        writer.start()
        holder.execute("BEGIN EXCLUSIVE")
        outcome = writer.submit(EntryKind.OUTCOME, {"request_id": "a"}, defer=True)
        await asyncio.sleep(0.2)
        await writer.aclose()
        await asyncio.sleep(0.01)  # let the writer's results reach the loop
        return outcome

    try:
        outcome = asyncio.run(main())
    finally:
        holder.execute("ROLLBACK")
    assert isinstance(outcome.exception(), AuditUnavailable)
    with AuditLog(log_path, read_only=True) as log:
        assert list(log.records()) == []
