"""A small, real HTTP upstream on loopback: the stand-in for a generic API.

It records every request it receives (so tests can prove what crossed the
broker) and has routes that misbehave on purpose: echoing the credential
back, redirecting, failing, stalling, answering huge bodies.

    GET  /items/{id}          an item; ``authorized`` says whether the expected key came
    POST /items               creates an item from a JSON or form body
    DELETE /items/{id}        deletes (the demo's policy does not allow it)
    GET  /leak                echoes the received Authorization in body and headers,
                              in full and masked, like a careless error message
    GET  /redirect            302 to another host
    GET  /status/{code}       answers with that status
    GET  /slow?seconds=N      waits before answering
    GET  /big?bytes=N         a body of N bytes
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from vertex_tools.demo.server import LoopbackServer

__all__ = ["EchoServer", "Received"]


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the upstream saw it."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class EchoServer(LoopbackServer):
    """Runs the stand-in on 127.0.0.1 in a background thread with its own event loop."""

    def __init__(self, expected_key: str) -> None:
        super().__init__()
        self.expected = f"Bearer {expected_key}"
        self._key = expected_key
        self.received: list[Received] = []
        self._items: dict[str, dict[str, object]] = {"1": {"id": "1", "name": "first item"}}
        self.pages: dict[str, str] = {}
        """Web pages by name, served at ``/pages/{name}``: content a third party wrote."""

    async def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/items/{id}", self._get_item)
        app.router.add_post("/items", self._create_item)
        app.router.add_delete("/items/{id}", self._delete_item)
        app.router.add_get("/leak", self._leak)
        app.router.add_get("/redirect", self._redirect)
        app.router.add_get("/status/{code}", self._status)
        app.router.add_get("/slow", self._slow)
        app.router.add_get("/big", self._big)
        app.router.add_get("/pages/{name}", self._page)
        return app

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body = await request.read()
        self.received.append(
            Received(
                request.method,
                request.raw_path.split("?", 1)[0],
                request.query_string,
                [(k, v) for k, v in request.headers.items()],
                body,
            )
        )
        return await handler(request)

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == self.expected

    async def _get_item(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "Invalid API key provided"}, status=401)
        item = self._items.get(request.match_info["id"])
        if item is None:
            return web.json_response({"error": "no such item"}, status=404)
        return web.json_response({**item, "authorized": True})

    async def _page(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "Invalid API key provided"}, status=401)
        page = self.pages.get(request.match_info["name"])
        if page is None:
            return web.json_response({"error": "no such page"}, status=404)
        return web.Response(text=page, content_type="text/html")

    async def _create_item(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "Invalid API key provided"}, status=401)
        raw = await request.read()
        if request.content_type == "application/json":
            data = json.loads(raw or b"{}")
        else:
            data = dict(await request.post())
        item_id = str(len(self._items) + 1)
        self._items[item_id] = {"id": item_id, **{str(k): v for k, v in data.items()}}
        return web.json_response(self._items[item_id], status=201)

    async def _delete_item(self, request: web.Request) -> web.Response:
        self._items.pop(request.match_info["id"], None)
        return web.json_response({"deleted": True})

    async def _leak(self, request: web.Request) -> web.Response:
        got = request.headers.get("Authorization", "")
        key = got.removeprefix("Bearer ")
        masked = key[:8] + "*" * 12 + key[-4:] if len(key) > 12 else "****"
        body = {
            "error": f"Invalid API key provided: {masked}",
            "echo": got,
            "debug": f"you sent {key}",
        }
        return web.json_response(body, status=401, headers={"X-Debug-Key": key})

    async def _redirect(self, request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "http://127.0.0.2:1/stolen"})

    async def _status(self, request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.json_response({"status": code}, status=code)

    async def _slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("seconds", "5")))
        return web.json_response({"slow": True})

    async def _big(self, request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.query.get("bytes", "0")))
