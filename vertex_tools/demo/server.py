"""Serve an aiohttp application on 127.0.0.1 from a background thread.

The base of every local stand-in (the demo's echo API, and the tests' Stripe,
GitHub and PostgREST stand-ins): a free loopback port picked by the kernel,
its own event loop, and a clean stop.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Self

from aiohttp import web

__all__ = ["LoopbackServer"]


class LoopbackServer:
    """Subclasses build the app in :meth:`make_app`; :meth:`on_stop` releases extras."""

    start_timeout_s = 20.0

    def __init__(self) -> None:
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    async def make_app(self) -> web.Application:
        """The application to serve (runs on the server's loop)."""
        raise NotImplementedError

    async def on_stop(self) -> None:
        """Release what :meth:`make_app` opened, after the server stopped (server's loop)."""

    def start(self) -> Self:
        """Start serving; returns self."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(timeout=self.start_timeout_s)
        return self

    def stop(self) -> None:
        """Stop serving and end the thread."""
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=20)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def _start(self) -> None:
        app = await self.make_app()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if not sockets:
            raise RuntimeError("the stand-in did not bind a socket")
        self.port = int(sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.on_stop()
