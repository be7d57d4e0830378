"""Diagnostic only: ``vertex`` with TCP sockets made with ``proto=IPPROTO_TCP``.

    python benchmarks/_nodelay_serve.py --home DIR serve --listen 127.0.0.1:PORT

asyncio sets TCP_NODELAY on an accepted connection only when the listening
socket's ``proto`` is IPPROTO_TCP; ``vertex serve`` binds with
``socket.socket(family, SOCK_STREAM)`` (proto 0), so its responses, written as
headers then body, wait on Nagle and the client's delayed ACK (about 40 ms on
Linux loopback). This wrapper changes nothing in the product: it only fills in
the protocol number in this process, so that run_all.py can show what the
broker's latency is once that wait is gone.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

_original_init = socket.socket.__init__


def _init(
    self: socket.socket,
    family: Any = -1,
    type: Any = -1,
    proto: int = -1,
    fileno: int | None = None,
) -> None:
    inet = family in (socket.AF_INET, socket.AF_INET6)
    if fileno is None and inet and type == socket.SOCK_STREAM and proto in (-1, 0):
        proto = socket.IPPROTO_TCP
    _original_init(self, family, type, proto, fileno)


if __name__ == "__main__":
    socket.socket.__init__ = _init  # type: ignore[method-assign]
    from vertex_tools.cli.main import main

    sys.argv[0] = "vertex"
    main()
