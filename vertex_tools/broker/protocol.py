"""uvicorn's httptools protocol, hardened for a broker that faces hostile clients.

uvicorn leaves these to a front proxy; the broker may have none:

* **Header timeout.** A connection must finish its request line and headers
  within ``header_timeout_s`` of connecting (or of the previous response):
  slowloris clients are cut off with 408, idle connections closed.
* **Header size.** At most ``max_header_bytes`` of request line and headers
  (httptools has no limit): 431.
* **HTTP/1.1 only.** HTTP/1.0 and 0.9 (which llhttp parses leniently enough to
  let a CR/LF in a request line become headers) get 505.
* **Origin-form targets only.** ``GET http://host/path`` (absolute-form) is
  refused with 400: the broker forwards to configured upstreams only, and the
  authority a client names must not look as if it mattered.

These refusals happen before a request exists for the pipeline, so they are
logged (status, reason, client address), not written to the audit log.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HardenedHttpToolsProtocol"]

log = logging.getLogger("vertex_tools.broker")

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    505: b"HTTP Version Not Supported",
}


class HardenedHttpToolsProtocol(HttpToolsProtocol):
    """See the module docstring; the limits are class attributes, set by ``serve``."""

    header_timeout_s = 10.0
    max_header_bytes = 32 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._rejected = False

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        self._reject(408, "the request headers did not arrive in time")

    def _reject(self, status: int, message: str) -> None:
        if self._rejected:
            return
        self._rejected = True
        self._disarm()
        # Below the application: no audit entry can be attributed, so say it in the log.
        log.warning("refused at the HTTP layer (%d %s) from %s", status, message, self.client)
        body = message.encode("ascii")
        head = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
        head += b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
        head += b"content-length: %d\r\n\r\n" % len(body)
        if not self.transport.is_closing():
            self.transport.write(head + body)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._header_timer is None:
            self._arm()

    def on_url(self, url: bytes) -> None:
        if self._rejected:
            return
        if not self.url and not url.startswith(b"/"):
            self._reject(400, "only origin-form request targets (/proxy/...) are accepted")
            return
        self._header_bytes += len(url)
        if self._header_bytes > self.max_header_bytes:
            self._reject(431, "the request line and headers are too large")
            return
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._rejected:
            return
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self.max_header_bytes:
            self._reject(431, "the request line and headers are too large")
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._rejected:
            return
        if self.parser.get_http_version() != "1.1":
            self._reject(505, "the broker speaks HTTP/1.1 only")
            return
        self._disarm()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._rejected:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._rejected:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request's headers are timed from here
