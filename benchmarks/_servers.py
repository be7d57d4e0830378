"""The two reference servers for the forwarding benchmark, each run as its own process.

    python benchmarks/_servers.py upstream --port P --key K
    python benchmarks/_servers.py proxy --port P --upstream URL --key K
    python benchmarks/_servers.py asgi --port P --upstream URL --key K

``upstream`` is a minimal aiohttp app answering ``GET /items/{id}`` like the demo's
echo stand-in, but without recording every request (the stand-in keeps a list of
them, which would grow under wrk). It checks the injected key, as the stand-in does.

``asgi`` (used by cpu_per_call.py only) is the same pass-through on the broker's
own stack: uvicorn with httptools on uvloop, an ASGI app, one aiohttp ClientSession.
It shows what the broker's framework costs per call before any of its own work.

``proxy`` is the bare pass-through the broker is measured against: an aiohttp
server and one shared aiohttp ClientSession, forwarding method, path, query and
body to the same upstream with the key injected, and nothing else (no token, no
policy, no rate, spend or audit). Both run on uvloop when it is installed, as the
broker does (uvicorn picks uvloop by itself), so the comparison is loop for loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import aiohttp
from aiohttp import web


def upstream_app(key: str) -> web.Application:
    expected = f"Bearer {key}"

    async def get_item(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != expected:
            return web.json_response({"error": "bad key"}, status=401)
        item = {"id": request.match_info["id"], "name": "first item"}
        return web.Response(body=json.dumps(item).encode(), content_type="application/json")

    app = web.Application()
    app.router.add_get("/items/{id}", get_item)
    return app


_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})


def proxy_app(upstream: str, key: str) -> web.Application:
    app = web.Application()
    session_key = web.AppKey("session", aiohttp.ClientSession)

    async def open_session(app: web.Application) -> None:
        app[session_key] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), auto_decompress=False
        )

    async def close_session(app: web.Application) -> None:
        await app[session_key].close()

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {"Authorization": f"Bearer {key}"}
        if request.content_type and body:
            headers["Content-Type"] = request.headers["Content-Type"]
        async with app[session_key].request(
            request.method, upstream + request.path_qs, headers=headers, data=body or None
        ) as response:
            payload = await response.read()
            out = {k: v for k, v in response.headers.items() if k.lower() not in _HOP}
            return web.Response(status=response.status, body=payload, headers=out)

    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def asgi_app(upstream: str, key: str) -> Any:
    """The pass-through as a plain ASGI app (no framework), for uvicorn."""
    state: dict[str, aiohttp.ClientSession] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    state["session"] = aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(limit=0), auto_decompress=False
                    )
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await state["session"].close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        target = upstream + scope["path"]
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        headers = {"Authorization": f"Bearer {key}"}
        async with state["session"].request(
            scope["method"], target, headers=headers, data=body or None
        ) as response:
            payload = await response.read()
            out = [
                (k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in response.headers.items()
                if k.lower() not in _HOP
            ]
        out.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": out})
        await send({"type": "http.response.body", "body": payload})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["upstream", "proxy", "asgi"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--upstream", default="")
    args = parser.parse_args()
    if args.role == "asgi":
        import uvicorn

        uvicorn.run(
            asgi_app(args.upstream, args.key),
            host="127.0.0.1",
            port=args.port,
            loop="auto",
            http="httptools",
            log_level="warning",
            access_log=False,
        )
        return
    app = upstream_app(args.key) if args.role == "upstream" else proxy_app(args.upstream, args.key)
    try:
        import uvloop
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
