"""Console login codes and sessions, on both backends: only hashes are stored, a code
is redeemed once and before it expires, and a session ends when told to."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.store.conftest import open_store
from vertex_tools.console.credentials import code_hash, new_login_code, session_hash
from vertex_tools.store import ConsoleSession, StateStore

NOW = 1_800_000_000.0


def test_a_code_is_redeemed_once_and_starts_a_session(store: StateStore) -> None:
    store.add_console_login(code_hash("c1"), issued_by="alice", created=NOW, expires=NOW + 600)
    session = store.redeem_console_login(
        code_hash("c1"), session_hash("s1"), now=NOW + 1, expires=NOW + 100
    )
    assert session == ConsoleSession("alice", NOW + 1, NOW + 100)
    assert store.get_console_session(session_hash("s1"), NOW + 2) == session
    again = store.redeem_console_login(
        code_hash("c1"), session_hash("s2"), now=NOW + 2, expires=NOW + 100
    )
    assert again is None
    assert store.get_console_session(session_hash("s2"), NOW + 2) is None


def test_wrong_and_expired_codes_start_nothing(store: StateStore) -> None:
    store.add_console_login(code_hash("c1"), issued_by="alice", created=NOW, expires=NOW + 600)
    assert store.redeem_console_login(code_hash("c2"), "h", now=NOW, expires=NOW + 9) is None
    assert store.redeem_console_login(code_hash("c1"), "h", now=NOW + 600, expires=NOW + 9) is None
    # The raw code is not a key: only its hash is.
    assert store.redeem_console_login("c1", "h", now=NOW, expires=NOW + 9) is None


def test_sessions_expire_and_end(store: StateStore) -> None:
    for code, sid in (("a", "s1"), ("b", "s2")):
        store.add_console_login(code_hash(code), issued_by="bob", created=NOW, expires=NOW + 60)
        store.redeem_console_login(code_hash(code), session_hash(sid), now=NOW, expires=NOW + 100)
    assert store.get_console_session(session_hash("s1"), NOW + 100) is None
    store.end_console_session(session_hash("s2"), NOW + 5)
    store.end_console_session(session_hash("s2"), NOW + 6)  # idempotent
    assert store.get_console_session(session_hash("s2"), NOW + 7) is None


def test_prune_drops_expired_codes_and_sessions(store: StateStore) -> None:
    store.add_console_login(code_hash("a"), issued_by="bob", created=NOW, expires=NOW + 60)
    store.prune(NOW + 61)
    assert store.redeem_console_login(code_hash("a"), "h", now=NOW, expires=NOW + 9) is None


def _redeem(where: str, code: str, sid: str, start: threading.Barrier, out: list[bool]) -> None:
    store = open_store(where)
    try:
        start.wait()
        got = store.redeem_console_login(
            code_hash(code), session_hash(sid), now=NOW + 1, expires=NOW + 100
        )
        out.append(got is not None)
    finally:
        store.close()


def test_concurrent_redemptions_of_one_code_start_one_session(store_where: str) -> None:
    code = new_login_code()
    first = open_store(store_where)
    first.add_console_login(code_hash(code), issued_by="x", created=NOW, expires=NOW + 600)
    first.close()
    start = threading.Barrier(4)
    out: list[bool] = []
    threads = [
        threading.Thread(target=_redeem, args=(store_where, code, f"s{i}", start, out))
        for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(out) == [False, False, False, True]


def test_the_sqlite_file_holds_no_code_or_session_id(tmp_path: Path) -> None:
    path = tmp_path / "vertex.db"
    store = open_store(str(path))
    code, sid = new_login_code(), new_login_code()
    store.add_console_login(code_hash(code), issued_by="x", created=NOW, expires=NOW + 600)
    store.redeem_console_login(code_hash(code), session_hash(sid), now=NOW, expires=NOW + 60)
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert code.encode() not in raw and sid.encode() not in raw
    assert code_hash(code).encode() in raw
