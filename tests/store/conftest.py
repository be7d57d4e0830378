"""Every state store test runs against both backends: a real SQLite file and a
real PostgreSQL database (a fresh one per test, on the session's cluster)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import PostgresCluster
from vertex_tools.store import SqliteStore, StateStore
from vertex_tools.store.dsn import PostgresDsn
from vertex_tools.store.postgres import PostgresStore, initialise_postgres


def open_store(where: str) -> StateStore:
    """A store for ``where``: a SQLite path or a postgresql:// URL (picklable, for children)."""
    if where.startswith("postgresql://"):
        return PostgresStore(PostgresDsn(where))
    return SqliteStore(Path(where))


@pytest.fixture(params=["sqlite", "postgres"])
def store_where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh, initialised store is: a SQLite path or a migrated database's URL."""
    if request.param == "sqlite":
        path = tmp_path / "vertex.db"
        SqliteStore(path).close()
        return str(path)
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database()
    initialise_postgres(PostgresDsn(url), actor="tests")
    return url


@pytest.fixture
def store(store_where: str) -> Iterator[StateStore]:
    s = open_store(store_where)
    yield s
    s.close()
