"""``vertex serve``: bind, start the runtime, serve with uvicorn.

The listening socket is bound here, before uvicorn starts, so ``--listen
127.0.0.1:0`` works (the kernel picks a free port) and the actual address can
be announced: on stdout, and atomically in ``--ready-file`` for programs that
start a broker and wait for it (the embedded local broker does).
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import json
import logging
import os
import signal
import socket
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

import uvicorn

from vertex_tools.broker.app import BrokerApp
from vertex_tools.broker.protocol import HardenedHttpToolsProtocol
from vertex_tools.broker.runtime import BrokerConfig, Runtime
from vertex_tools.errors import ConfigError
from vertex_tools.home import Home
from vertex_tools.store.location import StoreLocation

__all__ = ["bind", "serve"]

log = logging.getLogger("vertex_tools.broker")

_GC_YOUNG_THRESHOLD = 10_000


def _tune_gc() -> None:
    """Once started: the objects built so far (modules, policy, catalogs) will live as
    long as the process, so they leave the collector's view (``gc.freeze``), and
    the youngest generation is collected after 10,000 net new objects instead of
    700. Every forwarded call allocates hundreds of short-lived objects; with the
    defaults, collections took about 36 us per call under load (and full ones
    27 ms pauses), with this about 3 us (benchmarks/RESULTS.md). Garbage that is
    not in a cycle is freed at once as before; cycles wait a little longer. No
    ``gc.collect()`` first: it would add about 12 ms to the start (a target of its
    own) to free the few cycles start-up leaves, which now stay."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, middle, old)


def bind(
    listen: str | None, uds: Path | None, *, allow_remote: bool = False
) -> tuple[socket.socket, str]:
    """Bind the listening socket; return it and the URL clients should use."""
    if uds is not None:
        if uds.exists():
            if not stat.S_ISSOCK(uds.stat().st_mode):
                raise ConfigError(f"{uds} exists and is not a socket; choose another --uds path")
            uds.unlink()  # a stale socket from a broker that did not shut down
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is the credential boundary: owner only
        try:
            sock.bind(str(uds))
        finally:
            os.umask(old)
        sock.listen(512)
        return sock, f"unix:{uds}"
    host, _, port_text = (listen or "127.0.0.1:8750").rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError as exc:
        raise ConfigError(f"--listen wants HOST:PORT, got {listen!r}") from exc
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not allow_remote:
        raise ConfigError(
            f"--listen {host}: the broker listens on loopback or a Unix socket; put a TLS "
            "proxy in front for remote agents, or pass --allow-remote if you know why"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only when
    # the socket says it is TCP. Without it every answer written in two parts (headers,
    # then body) waited ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(512)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
    return sock, f"http://{shown}:{bound_port}"


def _write_ready(path: Path, url: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}), encoding="utf-8")
    os.replace(tmp, path)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def serve(
    home: Home,
    *,
    policy_path: Path,
    listen: str | None,
    uds: Path | None,
    environ: Mapping[str, str],
    ready_file: Path | None = None,
    allow_remote: bool = False,
    store: StoreLocation | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM. Raises before binding if the policy, home or store
    is bad (a shared database that is not migrated to this version included)."""
    broker_config = BrokerConfig(home=home, policy_path=policy_path, environ=environ, store=store)
    broker_config.location.require()
    runtime = Runtime(broker_config)
    sock, url = bind(listen, uds, allow_remote=allow_remote)

    def ready() -> None:
        _tune_gc()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(
            signal.SIGHUP, lambda: asyncio.ensure_future(runtime.reload_policy(force=True))
        )
        print(f"vertex: serving on {url} (policy {runtime.loaded.path})", flush=True)
        if ready_file is not None:
            _write_ready(ready_file, url)

    app = BrokerApp(runtime, on_ready=ready)
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        date_header=False,
        http=HardenedHttpToolsProtocol,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal that stopped it once it has shut down; with the
    # default SIGTERM action that would kill the process before the cleanup below.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        if uds is not None and uds.exists():
            uds.unlink()
        if ready_file is not None and ready_file.exists():
            ready_file.unlink()
    if not server.started:
        print("vertex: the broker failed to start; see the messages above", file=sys.stderr)
        raise SystemExit(1)
