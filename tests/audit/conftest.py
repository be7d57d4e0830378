"""Fixtures for the audit tests: a deterministic clock, real log files, and a
raw SQLite handle for playing the attacker who can write the file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from vertex_tools.audit import AuditLog, EntryKind

START_S = 1_700_000_000


class FakeClock:
    """Starts at START_S and moves half a second per call: exact in binary, so
    the expected microsecond times are exact too."""

    def __init__(self, start: float = START_S, step: float = 0.5) -> None:
        self.now = float(start)
        self.step = step
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        value = self.now
        self.now += self.step
        return value


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"


@pytest.fixture
def log(log_path: Path, clock: FakeClock) -> Iterator[AuditLog]:
    with AuditLog(log_path, clock=clock) as opened:
        yield opened


def fill(log: AuditLog, n: int) -> None:
    """Append n entries, one transaction each, with data that names its position."""
    for i in range(1, n + 1):
        log.append(EntryKind.INTENT if i % 2 else EntryKind.OUTCOME, {"i": i, "op": f"op-{i}"})


def attacker(path: Path) -> sqlite3.Connection:
    """A plain connection to the file with the append-only triggers dropped, as
    anyone who can write the file could."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    return conn
