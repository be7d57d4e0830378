"""The session file: JSON Lines, versioned, one broker call per line.

    line 1      {"format": "vertex-session", "version": 1, "recorded": ..., "note": ...}
    line 2..n   {"call": 1, "time": ..., "tool": ..., "args": {...}, "token": "t1",
                 "grant": ..., "request": {...}, "decision": {...}, "response": {...}}
    last line   {"end": n}          (n calls: a file cut at a line boundary is caught)

Invariants of a written file: no vertex token (``vt1.tk_...``), no token id, no
``Authorization``/``apikey``/``Cookie`` header; the upstream secret was already
scrubbed by the broker. Reading is strict: an unknown format or version, a
missing field, a line that is not JSON, a call out of order or a missing end
line is a :class:`SessionFormatError` naming the file and line.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vertex_tools.errors import SessionFormatError

__all__ = [
    "FORMAT",
    "VERSION",
    "RecordedCall",
    "RecordedDecision",
    "Session",
    "SessionFormatError",
    "decode_taint",
    "encode_taint",
    "read_session",
    "redact",
]

FORMAT = "vertex-session"
VERSION = 1

TOKEN_TEXT = re.compile(r"vt1(?:\.|%2[eE])tk_[a-z2-7]{16}(?:\.|%2[eE])[A-Za-z0-9_-]{20,}")
TOKEN_ID_TEXT = re.compile(r"\btk_[a-z2-7]{16}\b")
SIGNATURE_TEXT = re.compile(r"Vertex-v1 [^\"\\\n]*", re.IGNORECASE)
DROPPED_HEADERS = frozenset(
    {
        "authorization",
        "apikey",
        "cookie",
        "x-api-key",
        "proxy-authorization",
        "host",
        "content-length",
        "x-vertex-taint",
        "connection",
        "accept-encoding",
        "user-agent",
    }
)
"""Credentials are never written; transport headers are rebuilt on replay; the taint
report is written decoded (``request.taint``)."""


def redact(text: str) -> str:
    """``text`` without vertex tokens, token ids or request signatures."""
    text = SIGNATURE_TEXT.sub("Vertex-v1 [redacted]", text)
    return TOKEN_ID_TEXT.sub("tk_[redacted]", TOKEN_TEXT.sub("[vertex token]", text))


def decode_taint(header: str) -> Any:
    """An ``X-Vertex-Taint`` header as the JSON it carries (readable in the file)."""
    raw = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
    return json.loads(raw.decode("utf-8"))


def encode_taint(report: Any) -> str:
    """The header value of a decoded report (the inverse of :func:`decode_taint`)."""
    raw = json.dumps(report, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


@dataclass(frozen=True, slots=True)
class RecordedDecision:
    """What the broker decided: effect, reason, rule (empty when the broker did not say)."""

    effect: str
    reason: str
    rule: str
    message: str = ""

    def same_as(self, other: RecordedDecision) -> bool:
        """Same effect and reason, and same rule where both name one."""
        if (self.effect, self.reason) != (other.effect, other.reason):
            return False
        return not (self.rule and other.rule and self.rule != other.rule)

    def short(self) -> str:
        """``deny tainted_argument (grants.x.taint.control)``."""
        rule = f" ({self.rule})" if self.rule else ""
        return f"{self.effect} {self.reason}{rule}"

    def to_json(self) -> dict[str, str]:
        """As written in the file."""
        return {
            "effect": self.effect,
            "reason": self.reason,
            "rule": self.rule,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One broker call of a session."""

    line: int
    number: int
    time: float
    tool: str | None
    args: Any
    token: str
    grant: str
    method: str
    upstream: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    taint: Any
    decision: RecordedDecision
    status: int
    content_type: str
    response: bytes
    lookups: tuple[tuple[str, bytes], ...] = ()
    """(path, answer) of the broker's amount look-ups for this call, when recorded."""

    @property
    def target(self) -> str:
        """``/proxy/<upstream><path>[?query]`` as the client sent it."""
        return f"/proxy/{self.upstream}{self.path}" + (f"?{self.query}" if self.query else "")

    def describe(self) -> str:
        """``stripe_create_refund POST /v1/refunds`` for reports."""
        tool = self.tool or "(no tool)"
        return f"{tool} {self.method} /{self.upstream}{self.path}"


@dataclass(frozen=True, slots=True)
class Session:
    """A parsed session file."""

    path: Path
    header: dict[str, Any]
    calls: tuple[RecordedCall, ...]


def _body_out(data: bytes) -> Any:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def body_to_json(data: bytes) -> Any:
    """A body as written in the file: text, or ``{"base64": ...}`` for bytes."""
    return _body_out(data)


def _body_in(value: Any, where: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and set(value) == {"base64"} and isinstance(value["base64"], str):
        try:
            return base64.b64decode(value["base64"], validate=True)
        except ValueError as exc:
            raise SessionFormatError(f"{where}: body is not valid base64") from exc
    raise SessionFormatError(f'{where}: body must be a string or {{"base64": ...}}')


def _get(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise SessionFormatError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SessionFormatError(f"{where}: field {key!r} has the wrong type")
    return value


def _call(obj: dict[str, Any], where: str, line: int) -> RecordedCall:
    request = _get(obj, "request", dict, where)
    decision = _get(obj, "decision", dict, where)
    response = _get(obj, "response", dict, where)
    headers = _get(request, "headers", list, where + ": request")
    pairs: list[tuple[str, str]] = []
    for item in headers:
        if not (
            isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)
        ):
            raise SessionFormatError(f"{where}: request.headers must be [name, value] pairs")
        pairs.append((item[0], item[1]))
    tool = obj.get("tool")
    if tool is not None and not isinstance(tool, str):
        raise SessionFormatError(f"{where}: field 'tool' has the wrong type")
    return RecordedCall(
        line=line,
        number=_get(obj, "call", int, where),
        time=float(_get(obj, "time", (int, float), where)),
        tool=tool,
        args=obj.get("args"),
        token=_get(obj, "token", str, where),
        grant=_get(obj, "grant", str, where),
        method=_get(request, "method", str, where + ": request"),
        upstream=_get(request, "upstream", str, where + ": request"),
        path=_get(request, "path", str, where + ": request"),
        query=_get(request, "query", str, where + ": request"),
        headers=tuple(pairs),
        body=_body_in(request.get("body", ""), where + ": request"),
        taint=request.get("taint"),
        decision=RecordedDecision(
            effect=_get(decision, "effect", str, where + ": decision"),
            reason=_get(decision, "reason", str, where + ": decision"),
            rule=_get(decision, "rule", str, where + ": decision"),
            message=str(decision.get("message", "")),
        ),
        status=_get(response, "status", int, where + ": response"),
        content_type=str(response.get("content_type", "")),
        response=_body_in(response.get("body", ""), where + ": response"),
        lookups=_lookups(obj.get("lookups", []), where),
    )


def _lookups(value: Any, where: str) -> tuple[tuple[str, bytes], ...]:
    if not isinstance(value, list):
        raise SessionFormatError(f"{where}: field 'lookups' must be a list")
    found: list[tuple[str, bytes]] = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise SessionFormatError(f"{where}: each look-up needs a 'path' and a 'body'")
        found.append((item["path"], _body_in(item.get("body"), where + ": lookups")))
    return tuple(found)


def read_session(path: Path) -> Session:
    """Parse a session file; :class:`SessionFormatError` names the line of any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SessionFormatError(f"{path}: cannot read the session file ({exc})") from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    else:
        raise SessionFormatError(
            f"{path}:{len(lines)}: the file does not end with a newline: it was cut short; "
            "record the session again"
        )
    header: dict[str, Any] | None = None
    calls: list[RecordedCall] = []
    ended = False
    for number, raw in enumerate(lines, start=1):
        where = f"{path}:{number}"
        if ended:
            raise SessionFormatError(f"{where}: text after the end line")
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SessionFormatError(f"{where}: not a JSON object ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise SessionFormatError(f"{where}: not a JSON object")
        if header is None:
            if obj.get("format") != FORMAT:
                raise SessionFormatError(
                    f"{where}: not a vertex session file (the first line must say "
                    f'"format": "{FORMAT}")'
                )
            if obj.get("version") != VERSION:
                raise SessionFormatError(
                    f"{where}: session format version {obj.get('version')!r} is not supported "
                    f"(this vertex_tools reads version {VERSION}); upgrade vertex_tools"
                )
            header = obj
            continue
        if "end" in obj:
            if obj["end"] != len(calls) or set(obj) != {"end"}:
                raise SessionFormatError(
                    f"{where}: the end line says {obj.get('end')!r} calls, the file holds "
                    f"{len(calls)}: calls are missing"
                )
            ended = True
            continue
        call = _call(obj, where, number)
        if call.number != len(calls) + 1:
            raise SessionFormatError(
                f"{where}: call {call.number} where call {len(calls) + 1} was expected "
                "(lines missing or reordered)"
            )
        calls.append(call)
    if header is None:
        raise SessionFormatError(f"{path}:1: the file is empty")
    if not ended:
        raise SessionFormatError(
            f"{path}:{len(lines)}: no end line after the last call: the file was cut short "
            "(truncated); record the session again"
        )
    return Session(path, header, tuple(calls))
