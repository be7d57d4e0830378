"""Where a broker's policy comes from, and how it notices a change.

- :class:`FilePolicySource`: ``policy.toml`` (or ``--policy``), the embedded
  default; a change is a new (mtime, size) of the file.
- :class:`DatabasePolicySource`: the newest version pushed to the shared
  database (``vertex policy push``); a change is a new version number. Every
  replica polls it, so all of them serve the same policy within one reload
  interval of a push.

Either way an invalid policy raises :class:`PolicyError` and the runtime keeps
serving the one it has.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from vertex_tools.errors import ConfigError
from vertex_tools.policy import LoadedPolicy, load_policy, parse_policy

if TYPE_CHECKING:  # psycopg is only imported when a PostgreSQL store is used
    from vertex_tools.store.pg_policy import PostgresPolicies

__all__ = ["DatabasePolicySource", "FilePolicySource", "PolicySource"]


class PolicySource(Protocol):
    """A policy and a cheap way to tell that it changed."""

    def stamp(self) -> object:
        """A value that changes when the policy may have changed (blocking I/O)."""

    def load(self) -> LoadedPolicy:
        """Read and validate the current policy (PolicyError when invalid)."""

    def close(self) -> None:
        """Release what the source holds."""


class FilePolicySource:
    """A policy file on this host."""

    def __init__(self, path: Path) -> None:
        """Watch ``path``."""
        self.path = path

    def stamp(self) -> tuple[int, int] | None:
        """The file's (mtime_ns, size), or None when it cannot be read."""
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def load(self) -> LoadedPolicy:
        """Read and validate the file."""
        return load_policy(self.path)

    def close(self) -> None:
        """Nothing to release."""


class DatabasePolicySource:
    """The newest policy version in the shared database."""

    def __init__(self, policies: PostgresPolicies) -> None:
        """Serve from ``policies`` (owned: closed by :meth:`close`)."""
        self.policies = policies

    def stamp(self) -> tuple[int, str] | None:
        """(version, digest) of the newest push."""
        return self.policies.head()

    def load(self) -> LoadedPolicy:
        """Validate the newest pushed policy with this broker's code."""
        latest = self.policies.latest()
        if latest is None:
            raise ConfigError(
                f"no policy in {self.policies.dsn.redacted}: push one with "
                f"`vertex --store {self.policies.dsn.redacted} policy push FILE`"
            )
        where = f"{self.policies.dsn.redacted}#policy-v{latest.version}"
        return parse_policy(latest.source, where)

    def close(self) -> None:
        """Close the database connection."""
        self.policies.close()
