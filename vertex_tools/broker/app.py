"""The broker's ASGI application.

A plain ASGI callable rather than a framework: the broker must see the raw
request target (``raw_path``) exactly as the client sent and signed it, and
frameworks decode percent-escapes before routing.

Routes: ``/proxy/{upstream}/{path}`` (the pipeline), ``POST /vertex/v1/approvals``
(a guarded tool's call held for a human), ``/console`` and ``/console/...`` (the
operator console, ``vertex_tools.console``) and ``GET /healthz``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from vertex_tools.broker.asgi import BodyTooLarge, Receive, Scope, Send, read_body
from vertex_tools.broker.pipeline import Incoming, Outgoing, Pipeline
from vertex_tools.broker.runtime import Runtime
from vertex_tools.broker.sdk_answers import for_sdk
from vertex_tools.broker.tool_hold import PATH as APPROVALS_PATH
from vertex_tools.broker.tool_hold import hold_tool_call
from vertex_tools.console.app import PREFIX as CONSOLE_PREFIX
from vertex_tools.console.app import ConsoleApp
from vertex_tools.policy.durations import parse_duration

__all__ = ["BrokerApp"]

log = logging.getLogger("vertex_tools.broker")


class BrokerApp:
    """ASGI app; ``on_ready`` runs once the runtime has started."""

    def __init__(self, runtime: Runtime, *, on_ready: Callable[[], None] | None = None) -> None:
        self.runtime = runtime
        self.pipeline = Pipeline(runtime)
        self.console = ConsoleApp(runtime)
        self._on_ready = on_ready

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        answer = await self._http(scope, receive)
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (k.encode("latin-1"), v.encode("latin-1"))
                    for k, v in [*answer.headers, ("content-length", str(len(answer.body)))]
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.runtime.start()
                except Exception as exc:  # noqa: BLE001 - reported to the server, which exits
                    log.error("broker failed to start: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
                if self._on_ready is not None:
                    self._on_ready()
            elif message["type"] == "lifespan.shutdown":
                await self.runtime.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive) -> Outgoing:
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
        path = raw_path.decode("latin-1")
        if "?" in path:  # some servers leave the query in raw_path
            path = path.split("?", 1)[0]
        method = scope["method"]
        if path == "/healthz" and method == "GET":
            body = json.dumps({"status": "ok", "policy": self.runtime.loaded.digest[:16]}).encode()
            return Outgoing(200, [("content-type", "application/json")], body)
        if path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/"):
            return await self.console.handle(scope, receive, path)
        if path == APPROVALS_PATH and method == "POST":
            limit = self.runtime.loaded.policy.settings.max_request_bytes
            try:
                async with asyncio.timeout(
                    float(parse_duration(self.runtime.loaded.policy.settings.read_timeout))
                ):
                    held_body = await read_body(scope, receive, limit)
            except (BodyTooLarge, TimeoutError):
                return Outgoing(
                    413,
                    [("content-type", "application/json")],
                    b'{"error": {"message": "the approval request is too large or too slow"}}',
                )
            return await hold_tool_call(
                self.runtime,
                raw_path=path,
                query=scope.get("query_string", b"").decode("latin-1"),
                headers=list(scope["headers"]),
                body=held_body,
            )
        if not path.startswith("/proxy/"):
            return Outgoing(
                404,
                [("content-type", "application/json")],
                b'{"error": {"message": "not found: the broker serves /proxy/<upstream>/<path>"}}',
            )
        settings = self.runtime.loaded.policy.settings
        limit = settings.max_request_bytes
        too_large = timed_out = False
        try:
            if not any(name in _BODY_HEADERS for name, _ in scope["headers"]):
                # No body can follow (RFC 9112, 6.3): the server already has the whole
                # request, so there is nothing to wait for and no timer to set.
                body = await read_body(scope, receive, limit)
            else:
                # A body that stops arriving must not hold the request open forever.
                async with asyncio.timeout(float(parse_duration(settings.read_timeout))):
                    body = await read_body(scope, receive, limit)
        except BodyTooLarge:
            body, too_large = b"", True  # refused, and audited, by the pipeline
        except TimeoutError:
            body, timed_out = b"", True
        incoming = Incoming(
            method=method,
            raw_path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=list(scope["headers"]),
            body=body,
            too_large=too_large,
            timed_out=timed_out,
        )
        answer = await self.pipeline.handle(incoming)
        return for_sdk(
            answer,
            policy=self.runtime.loaded.policy,
            raw_path=path,
            headers=incoming.headers,
            scheme=str(scope.get("scheme", "http")),
        )


_BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding"})
"""Request headers (the server lower-cases names) that announce a body."""
