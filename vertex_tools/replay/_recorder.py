"""Recording an agent run through the broker, on the agent side.

Two hooks, both seams the client already has:

* :meth:`Recorder.transport` wraps the httpx transport of a
  :class:`~vertex_tools.BrokerClient`: it sees each request as signed and sent
  (method, path, query, body, the ``X-Vertex-Taint`` report) and the broker's
  answer (the decision, and a body the broker already scrubbed of the secret);
* :class:`Recorder` is also a LangChain callback handler: it names the tool,
  and its arguments, that made each call.

Nothing secret is written: the ``Authorization`` header (the signature, the
token id) and every other credential header are dropped, and every vertex
token or token id anywhere in a line is redacted before the line is written.
Calls to the broker's own approval route (guarded non-provider tools) are not
recorded; replay covers ``/proxy/...`` calls.
"""

from __future__ import annotations

import contextvars
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
from langchain_core.callbacks import BaseCallbackHandler

from vertex_tools.replay._format import (
    DROPPED_HEADERS,
    FORMAT,
    VERSION,
    body_to_json,
    decode_taint,
    redact,
)

__all__ = ["Recorder", "RecordingTransport"]


class Recorder(BaseCallbackHandler):
    """Writes one session file. Use as a context manager; add it to the run's callbacks
    and give each client ``transport=recorder.transport(grant)``."""

    raise_error = True
    run_inline = True

    def __init__(
        self,
        path: str | Path,
        *,
        note: str = "",
        lookups: Callable[[str], list[dict[str, Any]]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self._lookups = lookups
        self._clock = clock
        self._lock = threading.Lock()
        self._tool: contextvars.ContextVar[tuple[str, Any] | None] = contextvars.ContextVar(
            "vertex_recorder_tool", default=None
        )
        """The running tool: a context variable, so tools run in parallel threads or tasks
        (LangChain copies the context into each) are told apart."""
        self._calls = 0
        self._tokens = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", encoding="utf-8")
        header = {
            "format": FORMAT,
            "version": VERSION,
            "recorded": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "note": note,
        }
        self._write(header)

    def __repr__(self) -> str:
        return f"Recorder({str(self.path)!r}, calls={self._calls})"

    # the LangChain side: which tool made the call ------------------------------------------

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Note the tool and its arguments for the broker calls it makes."""
        name = (serialized or {}).get("name") or kwargs.get("name") or "tool"
        self._tool.set((str(name), inputs if inputs is not None else input_str))

    def on_tool_end(self, output: Any, **kwargs: Any) -> None:
        """The tool returned: later calls are not its."""
        self._tool.set(None)

    def on_tool_error(self, error: BaseException, **kwargs: Any) -> None:
        """The tool failed: later calls are not its."""
        self._tool.set(None)

    # the HTTP side ----------------------------------------------------------------------

    def transport(self, grant: str, inner: httpx.BaseTransport | None = None) -> RecordingTransport:
        """A transport for one client (one token) of ``grant``."""
        with self._lock:
            self._tokens += 1
            label = f"t{self._tokens}"
        return RecordingTransport(self, grant, label, inner or httpx.HTTPTransport())

    def record(
        self, grant: str, token: str, request: httpx.Request, response: httpx.Response
    ) -> None:
        """Append one call (called by :class:`RecordingTransport`)."""
        raw = request.url.raw_path.decode("ascii")
        path, _, query = raw.partition("?")
        if not path.startswith("/proxy/"):
            return
        upstream, _, rest = path.removeprefix("/proxy/").partition("/")
        headers: list[list[str]] = []
        taint: Any = None
        for name, value in request.headers.multi_items():
            low = name.lower()
            if low == "x-vertex-taint":
                try:
                    taint = decode_taint(value)
                except ValueError:
                    taint = {"undecodable": value}
            if low not in DROPPED_HEADERS:
                headers.append([low, value])
        tool = self._tool.get()
        request_id = response.headers.get("vertex-request-id", "")
        line: dict[str, Any] = {
            "call": 0,
            "time": round(self._clock(), 3),
            "tool": tool[0] if tool else None,
            "args": tool[1] if tool else None,
            "token": token,
            "grant": grant,
            "request": {
                "method": request.method,
                "upstream": unquote(upstream),
                "path": "/" + rest,
                "query": query,
                "headers": headers,
                "body": body_to_json(request.content),
                "taint": taint,
            },
            "decision": _decision(response),
            "response": {
                "status": response.status_code,
                "content_type": response.headers.get("content-type", ""),
                "body": body_to_json(response.content),
            },
        }
        if self._lookups is not None and request_id:
            found = self._lookups(request_id)
            if found:
                line["lookups"] = found
        with self._lock:
            self._calls += 1
            line["call"] = self._calls
            self._write(line)

    def _write(self, obj: dict[str, Any]) -> None:
        text = redact(json.dumps(obj, ensure_ascii=False, sort_keys=False, default=str))
        self._file.write(text + "\n")
        self._file.flush()

    def close(self) -> None:
        """Write the end line (without it a replay reports the file as cut short)."""
        with self._lock:
            if self._file.closed:
                return
            self._write({"end": self._calls})
            self._file.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decision(response: httpx.Response) -> dict[str, str]:
    verdict = response.headers.get("vertex-decision")
    if verdict == "allow":
        return {"effect": "allow", "reason": "allowed", "rule": "", "message": ""}
    try:
        error = response.json()["error"]
        return {
            "effect": str(error["effect"]),
            "reason": str(error["reason"]),
            "rule": str(error.get("rule", "")),
            "message": str(error.get("message", "")),
        }
    except (ValueError, KeyError, TypeError):
        return {
            "effect": "none",
            "reason": "no_decision",
            "rule": "",
            "message": f"HTTP {response.status_code} without a decision",
        }


class RecordingTransport(httpx.BaseTransport):
    """Sends through ``inner`` and records each exchange."""

    def __init__(
        self, recorder: Recorder, grant: str, token: str, inner: httpx.BaseTransport
    ) -> None:
        self._recorder = recorder
        self._grant = grant
        self._token = token
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Forward, read the whole answer, record it."""
        response = self._inner.handle_request(request)
        response.read()
        self._recorder.record(self._grant, self._token, request, response)
        return response

    def close(self) -> None:
        """Close the inner transport."""
        self._inner.close()
