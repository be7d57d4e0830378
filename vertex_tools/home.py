"""The data directory (``VERTEX_HOME``): where the broker keeps everything.

    policy.toml       the policy (commented template from ``vertex init``)
    master.key        vault master key, mode 0600 (unless VERTEX_MASTER_KEY is set)
    checkpoint.key    Ed25519 key that signs audit checkpoints, mode 0600
    checkpoint.pub    its public half, to verify checkpoints with
    checkpoint.last.json  a copy of the newest ``vertex audit checkpoint`` (the console
                      verifies the log against it)
    vertex.db         state: vault entries, tokens, nonces, rate limits, spend
    audit.db          the hash-chained audit log
    logs/             the local broker's output

With ``--store postgresql://...`` (``VERTEX_STORE``) the state, the vault, the
audit log and the policy live in that shared database instead
(``vertex_tools.store.location``); the keys stay here.

The checkpoint key is a file of its own, not derived from the master key or
stored in a database, so a stolen database cannot forge checkpoints.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from vertex_tools.errors import HomeError

if TYPE_CHECKING:
    from vertex_tools.store.location import StoreLocation

__all__ = ["Home", "init_home", "operator_name"]

ENV_HOME = "VERTEX_HOME"
ENV_MASTER_KEY = "VERTEX_MASTER_KEY"


@dataclass(frozen=True, slots=True)
class Home:
    """Paths inside one data directory."""

    root: Path

    @classmethod
    def resolve(cls, explicit: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Home:
        """``--home`` if given, else ``$VERTEX_HOME``, else ``~/.vertex``."""
        if explicit:
            return cls(Path(explicit).expanduser().absolute())
        if environ.get(ENV_HOME):
            return cls(Path(environ[ENV_HOME]).expanduser().absolute())
        return cls(Path("~/.vertex").expanduser().absolute())

    @property
    def policy(self) -> Path:
        """Default policy file."""
        return self.root / "policy.toml"

    @property
    def state_db(self) -> Path:
        """State database."""
        return self.root / "vertex.db"

    @property
    def audit_db(self) -> Path:
        """Audit log database."""
        return self.root / "audit.db"

    @property
    def master_key(self) -> Path:
        """Vault master key file."""
        return self.root / "master.key"

    @property
    def last_checkpoint(self) -> Path:
        """A copy of the newest checkpoint ``vertex audit checkpoint`` wrote."""
        return self.root / "checkpoint.last.json"

    @property
    def checkpoint_key(self) -> Path:
        """Checkpoint signing key."""
        return self.root / "checkpoint.key"

    @property
    def checkpoint_pub(self) -> Path:
        """Checkpoint verification key."""
        return self.root / "checkpoint.pub"

    @property
    def logs(self) -> Path:
        """Log directory of the local broker."""
        return self.root / "logs"

    def require(self, *, databases: bool = True) -> None:
        """Raise :class:`HomeError` unless this is an initialised data directory.

        ``databases=False`` skips the SQLite files (a shared database holds the state).
        """
        if not self.root.is_dir():
            raise HomeError(
                f"no data directory at {self.root}: run `vertex init --home {self.root}` "
                f"or set {ENV_HOME}"
            )
        if databases and (not self.state_db.exists() or not self.audit_db.exists()):
            raise HomeError(f"{self.root} is not initialised: run `vertex init --home {self.root}`")
        mode = stat.S_IMODE(self.root.stat().st_mode)
        if mode & 0o022:
            raise HomeError(
                f"{self.root} is writable by group or others (mode {mode:o}): "
                f"run `chmod 700 {self.root}`"
            )


def policy_template() -> str:
    """The commented policy written by ``vertex init``."""
    return (resources.files("vertex_tools") / "templates" / "policy.toml").read_text("utf-8")


def init_home(
    home: Home, *, environ: Mapping[str, str], store: StoreLocation | None = None
) -> list[str]:
    """Create what is missing in ``home`` and ``store`` (default: SQLite in ``home``);
    return what was created or migrated. Never overwrites."""
    # Imported here to keep `vertex --help` fast.
    from vertex_tools.audit import CheckpointKey
    from vertex_tools.store.location import SqliteLocation
    from vertex_tools.vault import MasterKey, load_keyring, write_key_file

    created: list[str] = []
    if not home.root.exists():
        home.root.mkdir(parents=True, mode=0o700)
        created.append(str(home.root))
    else:
        os.chmod(home.root, 0o700)
    home.logs.mkdir(mode=0o700, exist_ok=True)
    if not environ.get(ENV_MASTER_KEY) and not home.master_key.exists():
        write_key_file(home.master_key, MasterKey.generate())
        created.append(str(home.master_key))
    if not home.checkpoint_key.exists():
        CheckpointKey.generate(home.checkpoint_key, home.checkpoint_pub)
        created.extend([str(home.checkpoint_key), str(home.checkpoint_pub)])
    if not home.policy.exists():
        home.policy.write_text(policy_template(), encoding="utf-8")
        created.append(str(home.policy))
    load_keyring(home.root, environ)  # a malformed key fails here, not at first use
    location = store if store is not None else SqliteLocation(home)
    created.extend(location.initialise(actor=operator_name()))
    return created


def operator_name() -> str:
    """Who is acting, for the audit log: the login name, else the account's name, else
    the numeric user id (a container without a login session has no login name)."""
    try:
        return os.getlogin()
    except OSError:
        pass
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return str(os.getuid())
