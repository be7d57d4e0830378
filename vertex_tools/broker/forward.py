"""Forwarding to upstreams with aiohttp (measured ~5x cheaper per request than
httpx.AsyncClient, see DESIGN.md).

Hard rules, whatever the request says:

* only the upstream's configured scheme, host and port; the request supplies
  only the path and query, already validated by the engine;
* every address the host resolves to is checked, and the connection goes to
  a checked address (``PinnedResolver``); literal IP hosts are checked here
  because aiohttp does not resolve them;
* redirects are returned to the agent, never followed;
* proxy settings from the environment are ignored (``trust_env=False``);
* connect and read timeouts; responses over the size limit are refused;
* the body handed back is plain bytes the scrubber can read: gzip and deflate
  are decoded here (bounded), any other content encoding is refused;
* error messages carry the exception's type, never its text: library errors
  quote what the upstream sent, and an upstream may echo the secret.
"""

from __future__ import annotations

import ipaddress
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from yarl import URL

from vertex_tools.broker.netguard import AddressPolicy, PinnedResolver, UpstreamURL
from vertex_tools.errors import UpstreamBlocked, UpstreamError, UpstreamTimeout

__all__ = ["Forwarder", "UpstreamResponse", "decode_body"]


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """A buffered upstream response (buffered so it can be scrubbed)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    latency_us: int


def decode_body(encodings: Sequence[str], body: bytes, limit: int) -> bytes:
    """Undo a single gzip or deflate encoding, never producing more than ``limit`` bytes."""
    tokens = [
        token.strip().lower()
        for value in encodings
        for token in value.split(",")
        if token.strip() and token.strip().lower() != "identity"
    ]
    if not tokens:
        return body
    if len(tokens) > 1 or tokens[0] not in ("gzip", "x-gzip", "deflate"):
        raise UpstreamError(
            f"the upstream answered with content encoding {', '.join(tokens)!r}, which the "
            "broker cannot scrub; the response was withheld"
        )
    wbits = 16 + zlib.MAX_WBITS if tokens[0] in ("gzip", "x-gzip") else zlib.MAX_WBITS
    try:
        decoder = zlib.decompressobj(wbits)
        out = decoder.decompress(body, limit + 1)
        if tokens[0] == "deflate" and not decoder.eof and not out:
            raise zlib.error("not zlib-wrapped")
    except zlib.error:
        if tokens[0] != "deflate":
            raise UpstreamError("the upstream's gzip body does not decode") from None
        try:  # some servers send raw deflate without the zlib wrapper
            decoder = zlib.decompressobj(-zlib.MAX_WBITS)
            out = decoder.decompress(body, limit + 1)
        except zlib.error:
            raise UpstreamError("the upstream's deflate body does not decode") from None
    if len(out) > limit:
        raise UpstreamError(f"the decoded upstream response is larger than {limit} bytes")
    if not decoder.eof:
        raise UpstreamError("the upstream's compressed body is truncated")
    return out


class Forwarder:
    """One aiohttp session shared by every request of the broker."""

    def __init__(
        self,
        addresses: AddressPolicy,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_response_bytes: int,
    ) -> None:
        self._addresses = addresses
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect_timeout,
            sock_connect=connect_timeout,
            sock_read=read_timeout,
        )
        self._max_response = max_response_bytes
        self._session: aiohttp.ClientSession | None = None
        self._hosts_passed: set[str] = set()

    async def start(self) -> None:
        """Open the session; call from the running event loop."""
        connector = aiohttp.TCPConnector(
            resolver=PinnedResolver(self._addresses),
            use_dns_cache=False,
            limit=256,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            trust_env=False,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )

    async def close(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def check_literal_host(self, upstream: UpstreamURL) -> None:
        """Check an upstream whose host is an IP literal (aiohttp never resolves those)."""
        host = upstream.host
        if host in self._hosts_passed:
            return
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            self._addresses.check(host)
        # The address policy is fixed for this forwarder's life (a policy change makes a
        # new one), so a host that passed passes again; one that failed is checked again.
        if len(self._hosts_passed) >= 256:
            self._hosts_passed.clear()
        self._hosts_passed.add(host)

    async def forward(
        self,
        upstream: UpstreamURL,
        *,
        method: str,
        path: str,
        query: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
    ) -> UpstreamResponse:
        """Send one request; raise :class:`UpstreamError` subclasses on failure."""
        if self._session is None:
            raise UpstreamError("the forwarder is not started", maybe_delivered=False)
        self.check_literal_host(upstream)
        target = f"{upstream.origin}{upstream.base_path}{path}"
        if query:
            target += "?" + query
        started = time.perf_counter()
        try:
            async with self._session.request(
                method,
                URL(target, encoded=True),
                headers=[*headers, ("Accept-Encoding", "identity")],
                data=body if body else None,
                allow_redirects=False,
            ) as response:
                chunks: list[bytes] = []
                length = response.content_length
                if length is not None and length <= min(self._max_response, 65536):
                    # Small, and its length is announced: one read, no chunk loop.
                    # aiohttp stops at content-length, so it cannot read more.
                    chunks.append(await response.read())
                else:
                    size = 0
                    async for chunk in response.content.iter_chunked(65536):
                        size += len(chunk)
                        if size > self._max_response:
                            raise UpstreamError(
                                f"the upstream response is larger than max_response_bytes "
                                f"({self._max_response}); it was withheld"
                            )
                        chunks.append(chunk)
                status = response.status
                raw_headers = [(k, v) for k, v in response.headers.items()]
                encodings = response.headers.getall("Content-Encoding", [])
        except UpstreamError:
            raise
        except aiohttp.ConnectionTimeoutError as exc:
            raise UpstreamTimeout(
                f"could not connect to {upstream.host} in time", maybe_delivered=False
            ) from exc
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{upstream.host} did not answer in time") from exc
        except aiohttp.ClientConnectorError as exc:
            blocked = _blocked_cause(exc)
            if blocked is not None:
                raise blocked from exc
            raise UpstreamError(
                f"cannot connect to {upstream.host} ({type(exc).__name__})", maybe_delivered=False
            ) from exc
        except aiohttp.ClientError as exc:
            blocked = _blocked_cause(exc)
            if blocked is not None:
                raise blocked from exc
            raise UpstreamError(
                f"the connection to {upstream.host} failed ({type(exc).__name__})"
            ) from exc
        except OSError as exc:
            raise UpstreamError(
                f"the connection to {upstream.host} failed ({type(exc).__name__})"
            ) from exc
        if not 200 <= status <= 599:
            raise UpstreamError(f"the upstream answered with status {status}, which is not relayed")
        return UpstreamResponse(
            status=status,
            headers=raw_headers,
            body=decode_body(encodings, b"".join(chunks), self._max_response),
            latency_us=int((time.perf_counter() - started) * 1e6),
        )


def _blocked_cause(exc: BaseException) -> UpstreamBlocked | None:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, UpstreamBlocked):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
