"""BrokerClient: the agent side. Signs every request with the token; never sends it.

    >>> client = BrokerClient("http://127.0.0.1:8750", token=token)   # doctest: +SKIP
    >>> client.get("echo", "/items/1").json()                         # doctest: +SKIP

A refusal raises :class:`BrokerRefused` carrying the broker's Decision (reason
code, rule, message); a broker that cannot be reached or fails raises
:class:`BrokerUnavailable`. Responses the upstream itself gave, errors
included, are returned as they are.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping
from typing import Any

import httpx

from vertex_tools.decision import Decision
from vertex_tools.errors import BrokerRefused, BrokerUnavailable, TokenError
from vertex_tools.signing import sign_request
from vertex_tools.tokens import derive_signing_key, parse_token

__all__ = ["AsyncBrokerClient", "BrokerClient", "VertexAuth"]


class VertexAuth(httpx.Auth):
    """httpx auth flow that signs each request (proof of possession, timestamp, nonce)."""

    requires_request_body = True

    def __init__(self, token: str, *, clock: Callable[[], float] = time.time) -> None:
        parsed = parse_token(token)
        self._token_id = parsed.token_id
        self._key = derive_signing_key(parsed.secret)
        self._clock = clock

    def __repr__(self) -> str:
        return f"VertexAuth(token_id={self._token_id!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add ``Authorization: Vertex-v1 ...`` to the request."""
        for name in list(request.headers):
            if name.lower() in ("authorization", "apikey", "cookie", "x-api-key"):
                del request.headers[name]
        request.headers["Authorization"] = sign_request(
            self._key,
            token_id=self._token_id,
            method=request.method,
            target=request.url.raw_path.decode("ascii"),
            body=request.content,
            headers=request.headers.multi_items(),
            timestamp=int(self._clock()),
        )
        yield request


APPROVALS_PATH = "/vertex/v1/approvals"


def _json_bytes(body: Any) -> bytes:
    import json

    return json.dumps(body, sort_keys=True, default=str).encode()


def _check(response: httpx.Response) -> httpx.Response:
    verdict = response.headers.get("vertex-decision")
    if verdict is None or verdict == "allow":
        if verdict is None and response.status_code >= 500:
            raise BrokerUnavailable(f"the broker answered HTTP {response.status_code}")
        return response
    try:
        decision = Decision.from_json(response.json()["error"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BrokerUnavailable(
            f"the broker answered HTTP {response.status_code} without a readable decision"
        ) from exc
    if response.status_code >= 500:
        raise BrokerUnavailable(f"{decision.reason.value}: {decision.message}")
    raise BrokerRefused(decision, response.status_code)


def _auth(token: str, clock: Callable[[], float], owner: str) -> VertexAuth:
    try:
        return VertexAuth(token, clock=clock)
    except TokenError as exc:
        raise TokenError(f"{owner} needs a vertex token: {exc}") from None


def _base(url: str, uds: str | None) -> tuple[str, str | None]:
    if url.startswith("unix:"):
        return "http://vertex-broker", url.removeprefix("unix:")
    return url.rstrip("/"), uds


def _path(upstream: str, path: str) -> str:
    if not path.startswith("/"):
        path = "/" + path
    return f"/proxy/{upstream}{path}"


class BrokerClient:
    """Synchronous client. ``url`` is ``http://host:port`` or ``unix:/path/to/socket``."""

    def __init__(
        self,
        url: str,
        *,
        token: str,
        uds: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        auth = _auth(token, clock, "BrokerClient")
        base, socket_path = _base(url, uds)
        self.url = url
        if transport is None:
            transport = httpx.HTTPTransport(uds=socket_path) if socket_path else None
        self._http = httpx.Client(
            base_url=base, auth=auth, timeout=timeout, transport=transport, trust_env=False
        )
        self._on_close: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"BrokerClient({self.url!r})"

    def request(
        self,
        method: str,
        upstream: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send ``method`` to ``path`` on ``upstream`` through the broker."""
        if self._http.is_closed:
            raise BrokerUnavailable("this BrokerClient is closed")
        try:
            response = self._http.request(
                method,
                _path(upstream, path),
                params=params,
                json=json,
                data=data,
                content=content,
                headers=headers,
            )
        except httpx.TransportError as exc:
            raise BrokerUnavailable(f"cannot reach the broker at {self.url}: {exc}") from exc
        return _check(response)

    def get(self, upstream: str, path: str, **kwargs: Any) -> httpx.Response:
        """GET through the broker."""
        return self.request("GET", upstream, path, **kwargs)

    def request_approval(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        reason: str = "",
        taint: list[dict[str, Any]] | None = None,
    ) -> dict[str, str]:
        """Hold a tool's call for a human (``vertex approvals``); the approval's id and
        state: ``pending``, ``denied``, or ``used`` (approved: the call may run now)."""
        if self._http.is_closed:
            raise BrokerUnavailable("this BrokerClient is closed")
        body = {"tool": tool, "arguments": dict(arguments), "reason": reason, "taint": taint or []}
        try:
            response = self._http.post(APPROVALS_PATH, content=_json_bytes(body))
        except httpx.TransportError as exc:
            raise BrokerUnavailable(f"cannot reach the broker at {self.url}: {exc}") from exc
        if response.headers.get("vertex-decision") is not None:
            _check(response)
        if response.status_code != 200:
            raise BrokerUnavailable(f"the broker answered HTTP {response.status_code}")
        data = response.json()
        return {"approval_id": str(data["approval_id"]), "state": str(data["state"])}

    def post(self, upstream: str, path: str, **kwargs: Any) -> httpx.Response:
        """POST through the broker."""
        return self.request("POST", upstream, path, **kwargs)

    def delete(self, upstream: str, path: str, **kwargs: Any) -> httpx.Response:
        """DELETE through the broker."""
        return self.request("DELETE", upstream, path, **kwargs)

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the client is closed (the local broker stops this way)."""
        self._on_close.append(callback)

    def close(self) -> None:
        """Close connections (and stop an owned local broker)."""
        self._http.close()
        while self._on_close:
            self._on_close.pop()()

    def __enter__(self) -> BrokerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncBrokerClient:
    """Asynchronous client with the same behaviour as :class:`BrokerClient`."""

    def __init__(
        self,
        url: str,
        *,
        token: str,
        uds: str | None = None,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        auth = _auth(token, clock, "AsyncBrokerClient")
        base, socket_path = _base(url, uds)
        self.url = url
        if transport is None:
            transport = httpx.AsyncHTTPTransport(uds=socket_path) if socket_path else None
        self._http = httpx.AsyncClient(
            base_url=base, auth=auth, timeout=timeout, transport=transport, trust_env=False
        )

    def __repr__(self) -> str:
        return f"AsyncBrokerClient({self.url!r})"

    async def request(
        self,
        method: str,
        upstream: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send ``method`` to ``path`` on ``upstream`` through the broker."""
        if self._http.is_closed:
            raise BrokerUnavailable("this AsyncBrokerClient is closed")
        try:
            response = await self._http.request(
                method,
                _path(upstream, path),
                params=params,
                json=json,
                data=data,
                content=content,
                headers=headers,
            )
        except httpx.TransportError as exc:
            raise BrokerUnavailable(f"cannot reach the broker at {self.url}: {exc}") from exc
        return _check(response)

    async def get(self, upstream: str, path: str, **kwargs: Any) -> httpx.Response:
        """GET through the broker."""
        return await self.request("GET", upstream, path, **kwargs)

    async def post(self, upstream: str, path: str, **kwargs: Any) -> httpx.Response:
        """POST through the broker."""
        return await self.request("POST", upstream, path, **kwargs)

    async def aclose(self) -> None:
        """Close connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncBrokerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
