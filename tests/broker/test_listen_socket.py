"""The broker's listening socket: answers are not held back by Nagle's algorithm.

The broker writes an answer's headers and body separately; on a connection
without TCP_NODELAY the body then waits for the client's delayed ACK (~40 ms
per request on Linux). asyncio turns TCP_NODELAY on for every accepted
connection, but only when the listening socket says it is TCP: this checks it
does, on a real accepted connection.
"""

from __future__ import annotations

import asyncio
import socket

from vertex_tools.broker.server import bind


def test_accepted_connections_have_tcp_nodelay() -> None:
    host = "127.0.0.1"
    sock, url = bind(f"{host}:0", None)
    port = int(url.rsplit(":", 1)[1])

    async def accept_one() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                accepted = transport.get_extra_info("socket")
                seen.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection(host, port)
            try:
                return await asyncio.wait_for(seen, 10)
            finally:
                writer.close()

    assert asyncio.run(accept_one()) != 0
