"""What the broker answers with: the Outgoing value, refusals as JSON, token redaction."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from vertex_tools.decision import Decision

__all__ = ["TOKEN_IN_TEXT", "Outgoing", "redact_tokens", "refusal"]

# A vertex token anywhere in a URL (also percent-encoded dots): never logged, never sent.
TOKEN_IN_TEXT = re.compile(r"vt1(?:\.|%2[eE])tk_[a-z2-7]{16}(?:\.|%2[eE])[A-Za-z0-9_-]{20,}")
TOKEN_IN_BYTES = re.compile(TOKEN_IN_TEXT.pattern.encode("ascii"))
"""The same, in a request body as sent."""


@dataclass(slots=True)
class Outgoing:
    """The broker's answer."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    decision: Decision | None = None
    """The broker's own refusal this answer carries; None for an upstream's answer."""


def refusal(decision: Decision, request_id: str, *, retry_after: float | None = None) -> Outgoing:
    """The JSON answer for a refused or failed request."""
    headers = [
        ("content-type", "application/json"),
        ("vertex-decision", decision.effect.value),
        ("vertex-request-id", request_id),
    ]
    if retry_after is not None:
        headers.append(("retry-after", str(max(1, round(retry_after + 0.5)))))
    body = json.dumps({"error": decision.to_json(), "request_id": request_id}).encode()
    return Outgoing(decision.http_status, headers, body, decision)


def redact_tokens(text: str) -> str:
    """Replace any vertex token in ``text`` by its id and ``[REDACTED]``."""
    return TOKEN_IN_TEXT.sub("vt1.[REDACTED]", text)
