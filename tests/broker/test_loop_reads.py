"""Step 1's reads on the event loop (broker/loopread.py) and the database thread
(broker/dbthread.py): what they must never get wrong."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import SECRET, Deployment
from vertex_tools.broker.dbthread import DbThread
from vertex_tools.broker.loopread import Fallback, LoopReader
from vertex_tools.local import LocalBroker
from vertex_tools.store import SqliteStore
from vertex_tools.tokens import mint_token
from vertex_tools.vault import SecretValue


def test_a_new_vault_value_is_used_on_the_next_request(
    deployment: Deployment, broker: LocalBroker
) -> None:
    """A remembered vault entry is used only while its stored row is unchanged."""
    issued = deployment.issue("reader")
    upstream = deployment.upstream
    with broker.client(issued.token) as client:
        for _ in range(3):  # opened once, then remembered
            assert client.get("echo", "/items/1").status_code == 200
        try:
            with deployment.admin() as admin:
                admin.vault_put("echo-key", "http", "sk_test_replacement_value_0000001")
            seen = len(upstream.received)
            # The stand-in refuses the new key: what matters is what was sent.
            assert client.get("echo", "/items/1").status_code == 401
            sent = upstream.received[seen].header("Authorization")
            assert sent == "Bearer sk_test_replacement_value_0000001"
        finally:
            with deployment.admin() as admin:
                admin.vault_put("echo-key", "http", SECRET)
        assert client.get("echo", "/items/1").status_code == 200
        assert upstream.received[-1].header("Authorization") == f"Bearer {SECRET}"


def test_loop_reader_falls_back_at_once_when_the_database_is_locked(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with sqlite3.connect(db) as setup:
        setup.execute(
            "CREATE TABLE tokens (token_id TEXT PRIMARY KEY, grant_name, public_key, "
            "verifier, created, expires, revoked, last_used)"
        )
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # rollback journal: readers must wait
    reader = LoopReader(db)
    try:
        started = time.perf_counter()
        with pytest.raises(Fallback):
            reader.token("tk_0000000000000000")
        assert time.perf_counter() - started < 1.0  # no busy wait (timeout=0)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert reader.token("tk_0000000000000000") is None
    reader.close()


def test_loop_reader_cannot_write(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    sqlite3.connect(db).close()
    reader = LoopReader(db)
    with pytest.raises(sqlite3.OperationalError):
        reader._conn.execute("CREATE TABLE x (y)")
    reader.close()


def test_loop_reader_keeps_a_value_only_for_an_unchanged_row(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = SqliteStore(db)
    issued = mint_token("reader", now=time.time(), ttl=60)
    store.add_token(issued.record)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("CREATE TABLE vault_entries (name TEXT PRIMARY KEY, key_id, nonce, ciphertext)")
    writer.execute("INSERT INTO vault_entries VALUES ('k', 'a', x'01', x'02')")
    reader = LoopReader(db)

    def remembered() -> SecretValue | None:
        return reader.token_and_secret(issued.record.token_id, "k")[1]

    assert remembered() is None  # never opened
    before = reader.stamp("k")
    reader.keep("k", before, SecretValue("one"))
    kept = remembered()
    assert kept is not None and kept.reveal() == "one"
    writer.execute("UPDATE vault_entries SET nonce = x'03' WHERE name = 'k'")
    assert remembered() is None  # the row changed: open it again
    # A row that changed while it was being opened is not paired with the value.
    stale = reader.stamp("k")
    writer.execute("UPDATE vault_entries SET ciphertext = x'04' WHERE name = 'k'")
    reader.keep("k", stale, SecretValue("two"))
    assert remembered() is None
    writer.execute("DELETE FROM vault_entries")
    reader.keep("k", reader.stamp("k"), SecretValue("three"))
    assert remembered() is None
    reader.close()
    writer.close()
    store.close()


def test_token_and_remembered_secret_come_from_one_read_of_the_rows_stored_now(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.db"
    store = SqliteStore(db)
    issued = mint_token("reader", now=time.time(), ttl=60)
    store.add_token(issued.record)
    token_id = issued.record.token_id
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("CREATE TABLE vault_entries (name TEXT PRIMARY KEY, key_id, nonce, ciphertext)")
    writer.execute("INSERT INTO vault_entries VALUES ('k', 'a', x'01', x'02')")
    reader = LoopReader(db)
    record, value = reader.token_and_secret(token_id, "k")
    assert (record, value) == (issued.record, None)  # never opened: the database thread opens it
    reader.keep("k", reader.stamp("k"), SecretValue("one"))
    record, value = reader.token_and_secret(token_id, "k")
    assert record == issued.record and value is not None and value.reveal() == "one"
    assert reader.token_and_secret(token_id, None) == (issued.record, None)  # no upstream
    assert reader.token_and_secret("tk_0000000000000000", "k") == (None, None)
    store.revoke_token(token_id, now=time.time())
    record, value = reader.token_and_secret(token_id, "k")
    assert record is not None and record.revoked is not None  # the revocation is seen at once
    writer.execute("UPDATE vault_entries SET nonce = x'03' WHERE name = 'k'")
    assert reader.token_and_secret(token_id, "k")[1] is None  # the row changed: forgotten
    writer.execute("DELETE FROM vault_entries")
    reader.keep("k", None, SecretValue("two"))
    assert reader.token_and_secret(token_id, "k")[1] is None
    reader.close()
    writer.close()
    store.close()


def test_db_thread_runs_in_order_on_one_thread_and_reports_errors() -> None:
    async def main() -> None:
        db = DbThread("test-db")
        seen: list[tuple[int, str]] = []

        def job(i: int) -> int:
            seen.append((i, threading.current_thread().name))
            if i == 3:
                raise ValueError("three")
            return i * 10

        futures = [db.submit(functools.partial(job, i)) for i in range(6)]
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert results[:3] == [0, 10, 20] and results[4:] == [40, 50]
        assert isinstance(results[3], ValueError)
        assert [i for i, _ in seen] == list(range(6))
        assert {name for _, name in seen} == {"test-db"}
        last = db.submit(lambda: "queued before shutdown")
        db.shutdown()
        assert await last == "queued before shutdown"
        with pytest.raises(RuntimeError):
            db.submit(lambda: None)

    asyncio.run(main())
