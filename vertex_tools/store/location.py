"""Which database holds the shared state: chosen once, used by every command.

``--store`` (or ``VERTEX_STORE``) picks it; unset means the embedded default.

=====================  =================================  =======================
                       ``SqliteLocation`` (default)       ``PostgresLocation``
=====================  =================================  =======================
state, vault           ``vertex.db`` in the data dir      the shared database
audit log              ``audit.db`` in the data dir       ``audit_log`` table
policy                 ``policy.toml`` (or ``--policy``)  ``vertex policy push``
schema                 created on open                    versioned migrations,
                                                          ``vertex init``
=====================  =================================  =======================

The master key and the checkpoint key stay files in the data directory (or
``VERTEX_MASTER_KEY``) in both cases: the database never holds a key that
opens the vault or signs a checkpoint, so a stolen database (or backup) reads
as ciphertext and cannot forge a checkpoint.

psycopg is imported only when a PostgreSQL location is opened: SQLite users
do not need the ``postgres`` extra.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from vertex_tools.errors import ConfigError
from vertex_tools.home import Home
from vertex_tools.store.dsn import ENV_STORE, PostgresDsn, is_postgres_url, redact_dsn

if TYPE_CHECKING:
    from vertex_tools.audit._backend import AuditBackend
    from vertex_tools.store.base import StateStore
    from vertex_tools.store.pg_policy import PostgresPolicies
    from vertex_tools.vault import Keyring, Vault

__all__ = ["PostgresLocation", "SqliteLocation", "StoreLocation", "resolve_store"]


class StoreLocation(Protocol):
    """Opens the state store, the vault and the audit log of one deployment."""

    @property
    def shared(self) -> bool:
        """True when several broker replicas may share it (policy then lives in it)."""

    def describe(self) -> str:
        """For messages: a path, or a URL with the password masked."""

    def require(self) -> None:
        """Raise ``HomeError``/``StoreError`` naming the fix if it is not initialised."""

    def initialise(self, *, actor: str) -> list[str]:
        """Create or migrate what is missing; return what was done."""

    def open_state(self) -> StateStore:
        """The state store (tokens, nonces, rate, spend, approvals, idempotency keys)."""

    def open_vault(self, keyring: Keyring) -> Vault:
        """The vault, sealing and opening with ``keyring``."""

    def open_audit(
        self, *, clock: Callable[[], float] = time.time, read_only: bool = False
    ) -> AuditBackend:
        """The audit log (``read_only``: for verification and inspection)."""

    def policies(self) -> PostgresPolicies | None:
        """The shared policy versions, or None when policy is a file."""


@dataclass(frozen=True, slots=True)
class SqliteLocation:
    """``vertex.db`` and ``audit.db`` in the data directory: one broker, the default."""

    home: Home

    @property
    def shared(self) -> bool:
        """A SQLite file serves one host."""
        return False

    def describe(self) -> str:
        """The data directory."""
        return str(self.home.root)

    def require(self) -> None:
        """The data directory exists, is private, and holds both databases."""
        self.home.require()

    def initialise(self, *, actor: str) -> list[str]:
        """Create the databases that are missing (the schema is made on open)."""
        from vertex_tools.audit import AuditLog
        from vertex_tools.store.sqlite import SqliteStore
        from vertex_tools.vault._rows import SqliteVaultRows

        created: list[str] = []
        new_db = not self.home.state_db.exists()
        SqliteStore(self.home.state_db).close()
        SqliteVaultRows(self.home.state_db).close()
        if new_db:
            created.append(str(self.home.state_db))
        if not self.home.audit_db.exists():
            AuditLog(self.home.audit_db).close()
            created.append(str(self.home.audit_db))
        return created

    def open_state(self) -> StateStore:
        """``vertex.db``."""
        from vertex_tools.store.sqlite import SqliteStore

        return SqliteStore(self.home.state_db)

    def open_vault(self, keyring: Keyring) -> Vault:
        """The ``vault_entries`` table of ``vertex.db``."""
        from vertex_tools.vault import Vault

        return Vault(self.home.state_db, keyring)

    def open_audit(
        self, *, clock: Callable[[], float] = time.time, read_only: bool = False
    ) -> AuditBackend:
        """``audit.db`` (never created here: ``vertex init`` does that)."""
        from vertex_tools.audit import AuditLog

        return AuditLog(self.home.audit_db, clock=clock, create=False, read_only=read_only)

    def policies(self) -> None:
        """Policy is ``policy.toml``."""
        return None


@dataclass(frozen=True, slots=True)
class PostgresLocation:
    """One PostgreSQL database shared by every broker replica and operator command."""

    home: Home
    dsn: PostgresDsn

    def __post_init__(self) -> None:
        """Fail with the fix when the ``postgres`` extra (psycopg) is not installed."""
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                f"--store {self.dsn.redacted} needs psycopg: pip install 'vertex-tools[postgres]'"
            ) from exc

    @property
    def shared(self) -> bool:
        """Replicas share it."""
        return True

    def describe(self) -> str:
        """The URL, password masked."""
        return self.dsn.redacted

    def require(self) -> None:
        """The data directory (keys) exists and is private; the schema is checked on open."""
        self.home.require(databases=False)

    def initialise(self, *, actor: str) -> list[str]:
        """Apply pending schema migrations."""
        from vertex_tools.store.postgres import initialise_postgres

        applied = initialise_postgres(self.dsn, actor=actor)
        return [
            f"{self.dsn.redacted}: schema version {m.version} ({m.description})" for m in applied
        ]

    def open_state(self) -> StateStore:
        """The state tables."""
        from vertex_tools.store.postgres import PostgresStore

        return PostgresStore(self.dsn)

    def open_vault(self, keyring: Keyring) -> Vault:
        """The ``vault_entries`` table."""
        from vertex_tools.store.pg_vault import PostgresVaultRows
        from vertex_tools.vault import Vault

        return Vault(PostgresVaultRows(self.dsn), keyring)

    def open_audit(
        self, *, clock: Callable[[], float] = time.time, read_only: bool = False
    ) -> AuditBackend:
        """The ``audit_log`` table."""
        from vertex_tools.audit._pglog import PostgresAuditLog

        return PostgresAuditLog(self.dsn, clock=clock, read_only=read_only)

    def policies(self) -> PostgresPolicies:
        """The ``policies`` table."""
        from vertex_tools.store.pg_policy import PostgresPolicies

        return PostgresPolicies(self.dsn)


def resolve_store(explicit: str | None, environ: Mapping[str, str], home: Home) -> StoreLocation:
    """``--store`` if given, else ``$VERTEX_STORE``, else SQLite in the data directory.

    Accepts ``postgresql://...`` (or ``postgres://``) and ``sqlite`` (the default,
    spelled out); anything else is a ConfigError naming both.
    """
    value = (explicit or environ.get(ENV_STORE) or "").strip()
    if not value or value.lower() == "sqlite":
        return SqliteLocation(home)
    if is_postgres_url(value):
        return PostgresLocation(home, PostgresDsn(value))
    raise ConfigError(
        f"--store {redact_dsn(value)!r}: use a postgresql://user@host/db URL, or 'sqlite' "
        f"(the default: vertex.db and audit.db in the data directory); {ENV_STORE} takes "
        "the same values"
    )
