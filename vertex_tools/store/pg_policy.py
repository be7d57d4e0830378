"""The policy every replica serves, kept in the shared database.

Replicas must decide alike, so with a PostgreSQL store the policy is not a
file on each host: ``vertex policy push FILE`` validates the file and stores
its bytes as a new version (numbered, with its BLAKE3 digest, who pushed it
and when). Every broker serves the newest version and checks for a newer one
each reload interval (and on SIGHUP); one that does not validate with this
broker's code keeps the old policy serving, as a bad file does.
"""

from __future__ import annotations

from dataclasses import dataclass

from vertex_tools._closing import Closing
from vertex_tools.store.dsn import PostgresDsn
from vertex_tools.store.migrations import connect_checked

__all__ = ["PolicyVersion", "PostgresPolicies"]


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """One pushed policy: its number, digest, source bytes, and when and by whom."""

    version: int
    digest: str
    source: bytes
    pushed: float
    pushed_by: str


class PostgresPolicies(Closing):
    """The ``policies`` table: push a version, read the newest."""

    def __init__(self, dsn: PostgresDsn) -> None:
        """Connect and check the schema version (StoreError naming the fix)."""
        self.dsn = dsn
        self._db = connect_checked(dsn, what="policy table")

    def push(self, source: bytes, digest: str, *, now: float, by: str) -> int:
        """Store ``source`` (already validated by the caller) as the newest version."""
        with self._db.transaction() as cur:
            cur.execute(
                "INSERT INTO policies (digest, source, pushed, pushed_by) "
                "VALUES (%s, %s, %s, %s) RETURNING version",
                (digest, source, now, by),
            )
            row = cur.fetchone()
        assert row is not None  # INSERT ... RETURNING returns the row it made
        return int(str(row[0]))

    def head(self) -> tuple[int, str] | None:
        """(version, digest) of the newest policy, or None; cheap, for change checks."""
        with self._db.transaction() as cur:
            cur.execute("SELECT version, digest FROM policies ORDER BY version DESC LIMIT 1")
            row = cur.fetchone()
        return (int(str(row[0])), str(row[1])) if row is not None else None

    def latest(self) -> PolicyVersion | None:
        """The newest policy, or None when none was pushed."""
        with self._db.transaction() as cur:
            cur.execute(
                "SELECT version, digest, source, pushed, pushed_by FROM policies "
                "ORDER BY version DESC LIMIT 1"
            )
            row = cur.fetchone()
        if row is None:
            return None
        version, digest, source, pushed, pushed_by = row
        return PolicyVersion(
            int(str(version)),
            str(digest),
            bytes(source) if isinstance(source, bytes | memoryview) else b"",
            float(str(pushed)),
            str(pushed_by),
        )

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __repr__(self) -> str:
        return f"PostgresPolicies({self.dsn.redacted!r})"
