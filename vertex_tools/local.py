"""The embedded default: a broker process on a data directory, started for you.

    >>> with LocalBroker(home) as broker:                      # doctest: +SKIP
    ...     client = broker.client(token)
    ...     client.get("echo", "/items/1")

or in one call, a client that owns its broker and stops it when closed:

    >>> client = local_broker(home, token=token)               # doctest: +SKIP

The broker runs in its own process (it alone opens the vault); it listens on a
Unix socket inside the data directory (owner-only) when the path fits, else
on a free loopback port.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from vertex_tools.client import BrokerClient
from vertex_tools.errors import BrokerUnavailable
from vertex_tools.home import Home
from vertex_tools.store.location import resolve_store

__all__ = ["LocalBroker", "local_broker"]

_UDS_MAX = 100  # sun_path is 108 bytes on Linux; leave room


class LocalBroker:
    """Start and stop a ``vertex serve`` process for a data directory."""

    def __init__(
        self,
        home: str | os.PathLike[str],
        *,
        policy: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        listen: str = "auto",
    ) -> None:
        if listen not in ("auto", "tcp", "uds"):
            raise ValueError("listen must be 'auto', 'tcp' or 'uds'")
        self.listen = listen
        self.home = Home(Path(home).absolute())
        self.policy = Path(policy).absolute() if policy is not None else None
        self.env = dict(os.environ if env is None else env)
        self.url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"LocalBroker(home={str(self.home.root)!r}, url={self.url!r})"

    def start(self, timeout: float = 20.0) -> str:
        """Start the broker and wait until it serves; return its URL."""
        # VERTEX_STORE in ``env`` may put the state in a shared database; the broker
        # process resolves it the same way.
        resolve_store(None, self.env, self.home).require()
        run = self.home.logs
        run.mkdir(mode=0o700, exist_ok=True)
        ready = run / f"ready-{os.getpid()}-{id(self)}.json"
        ready.unlink(missing_ok=True)
        sock = run / "broker.sock"
        args = [sys.executable, "-m", "vertex_tools", "--home", str(self.home.root), "serve"]
        use_uds = self.listen == "uds" or (self.listen == "auto" and len(str(sock)) < _UDS_MAX)
        args += ["--uds", str(sock)] if use_uds else ["--listen", "127.0.0.1:0"]
        args += ["--ready-file", str(ready)]
        if self.policy is not None:
            args += ["--policy", str(self.policy)]
        log_path = run / "broker.log"
        with log_path.open("ab") as log_file:
            self._proc = subprocess.Popen(
                args,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready.exists():
                self.url = str(json.loads(ready.read_text("utf-8"))["url"])
                return self.url
            if self._proc.poll() is not None:
                tail = log_path.read_text("utf-8", errors="replace")[-2000:]
                raise BrokerUnavailable(f"the local broker exited at start:\n{tail}")
            time.sleep(0.02)
        self.stop()
        raise BrokerUnavailable(
            f"the local broker did not start within {timeout} s; see {log_path}"
        )

    @property
    def pid(self) -> int | None:
        """The broker process's id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def client(self, token: str) -> BrokerClient:
        """A client for this broker."""
        if self.url is None:
            raise BrokerUnavailable("the local broker is not started")
        return BrokerClient(self.url, token=token)

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 10 s)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        atexit.unregister(self.stop)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.url = None

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def local_broker(
    home: str | os.PathLike[str],
    *,
    token: str,
    policy: str | os.PathLike[str] | None = None,
) -> BrokerClient:
    """Start a broker on ``home`` and return a ready client that stops it when closed."""
    broker = LocalBroker(home, policy=policy)
    broker.start()
    client = broker.client(token)
    client.on_close(broker.stop)
    return client
