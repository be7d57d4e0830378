"""A throwaway PostgreSQL cluster: Debian's server, started on a free loopback port.

Shared by every test that needs a real PostgreSQL (the Supabase stand-in, the
PostgreSQL store, broker replicas): one cluster per test session
(``pg_cluster`` in ``tests/conftest.py``); a test that needs a clean slate
asks for its own database (:meth:`PostgresCluster.create_database`).

``initdb`` refuses to run as root, and tests run as root on CI. So when the
tests are root, the cluster belongs to the ``postgres`` OS user that Debian's
``postgresql`` package creates: initdb and pg_ctl run under ``runuser -u
postgres --`` and the cluster lives in a ``mkdtemp`` directory under /tmp
chowned to that user (pytest's own temporary directories are root-only, so
the server could not enter them). Run as any other user, the cluster is that
user's and nothing is switched.

The server listens on 127.0.0.1 only, its Unix socket sits in the cluster's
directory, and it asks for a password (scram-sha-256, a random one per run),
so another local user cannot walk in while the tests run. Durability is off:
the cluster is deleted at the end.

CI needs: ``apt-get install -y postgresql`` (Debian 12 brings PostgreSQL 15).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

__all__ = ["PostgresCluster", "find_bindir"]

_OWNER = "postgres"


def find_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and pg_ctl."""
    found = [
        Path(d)
        for d in glob.glob("/usr/lib/postgresql/*/bin")
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists()
    ]
    if not found:
        raise RuntimeError(
            "PostgreSQL's server is not installed (no /usr/lib/postgresql/*/bin/initdb): "
            "apt-get install -y postgresql"
        )
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """``with PostgresCluster() as pg: psycopg.connect(pg.conninfo)``."""

    def __init__(self) -> None:
        self.bindir = find_bindir()
        self.password = secrets.token_urlsafe(24)
        self.user = "postgres"
        self.port = 0
        self.root: Path | None = None
        self._as_owner: list[str] = []
        self._uid_gid: tuple[int, int] | None = None
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam(_OWNER)
            except KeyError as exc:
                raise RuntimeError(
                    f"running as root needs the {_OWNER!r} OS user (Debian's postgresql "
                    "package creates it) because initdb refuses root"
                ) from exc
            self._as_owner = ["runuser", "-u", _OWNER, "--"]
            self._uid_gid = (entry.pw_uid, entry.pw_gid)

    def url(self, dbname: str = "postgres") -> str:
        """A ``postgresql://`` URL for the superuser and ``dbname`` (password included)."""
        return (
            f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{dbname}"
            "?connect_timeout=10"
        )

    def create_database(self) -> str:
        """Create a new, empty database; return its ``postgresql://`` URL."""
        import psycopg

        name = f"vt_{secrets.token_hex(6)}"
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        return self.url(name)

    @property
    def conninfo(self) -> str:
        """A libpq connection string for the superuser over loopback TCP."""
        return (
            f"host=127.0.0.1 port={self.port} dbname=postgres "
            f"user={self.user} password={self.password}"
        )

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self._as_owner, *args], capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{Path(args[0]).name} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )

    def _own(self, path: Path) -> None:
        if self._uid_gid is not None:
            os.chown(path, *self._uid_gid)

    def start(self) -> PostgresCluster:
        """initdb, then start the server; returns self."""
        root = Path(tempfile.mkdtemp(prefix="vt-pg-"))
        self.root = root
        self._own(root)
        pwfile = root / "pwfile"
        pwfile.write_text(self.password + "\n", encoding="utf-8")
        pwfile.chmod(0o600)
        self._own(pwfile)
        data = root / "data"
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            self.user,
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        pwfile.unlink()
        # A free port can be taken between the probe and the bind: try a few.
        for attempt in range(3):
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} "
                f"-c unix_socket_directories={root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(root / "server.log"),
                    "-w",
                    "-t",
                    "30",
                    "-o",
                    options,
                    "start",
                )
                return self
            except RuntimeError:
                if attempt == 2:
                    log = root / "server.log"
                    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    self._remove()
                    raise RuntimeError(f"PostgreSQL did not start:\n{tail}") from None
        return self  # unreachable; keeps mypy's flow analysis simple

    def stop(self) -> None:
        """Stop the server and delete the cluster."""
        if self.root is None:
            return
        data = self.root / "data"
        try:
            if (data / "postmaster.pid").exists():
                self._run(str(self.bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        finally:
            self._remove()

    def _remove(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
