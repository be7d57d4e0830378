"""``POST /vertex/v1/approvals``: holding a guarded tool's call for a human.

A tool that is not ours (an e-mail sender, a shell) runs in the agent process,
not through the broker; :func:`vertex_tools.guard` checks its arguments there.
When its effect is ``approve``, the guard asks the broker to hold the call, so
that every held action, ours or not, waits in the same place for the same
people (``vertex approvals``) and lands in the same audit log.

The request is signed like any other (token, timestamp, nonce). Its body::

    {"tool": "send_email", "arguments": {...}, "reason": "...",
     "taint": [{"argument": "to", "sources": ["tool:read_web_page"], "excerpt": "..."}]}

The approval is bound to the token, the tool's name and its exact arguments
(canonical JSON), and used once, like a held request. The answer is
``{"approval_id": ..., "state": "pending" | "used" | "denied"}``: ``used``
means this call may run now.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from vertex_tools.audit import EntryKind
from vertex_tools.broker.admission import single_headers
from vertex_tools.broker.answers import Outgoing, redact_tokens, refusal
from vertex_tools.broker.approvals import binding_digest, new_approval_id, too_many_pending
from vertex_tools.broker.auth import authenticate
from vertex_tools.broker.runtime import Runtime
from vertex_tools.decision import Decision, Reason
from vertex_tools.errors import AuditUnavailable, RequestRejected, StoreError
from vertex_tools.policy.durations import parse_duration
from vertex_tools.store import Admission, ApprovalRequest, PendingApprovalsFull

__all__ = ["PATH", "hold_tool_call"]

PATH = "/vertex/v1/approvals"
_TOOL = re.compile(r"^[A-Za-z0-9_.:-]{1,64}\Z")
_MAX_TAINT = 32


def _store_down() -> Decision:
    return Decision.deny(Reason.AUDIT_UNAVAILABLE, "store", "the state database is unavailable")


def _bad(message: str) -> Decision:
    return Decision.deny(Reason.BAD_REQUEST, "approvals", message)


def _parse(body: bytes) -> tuple[str, dict[str, Any], str, list[dict[str, Any]]] | Decision:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return _bad("the body must be a JSON object: tool, arguments, reason, taint")
    if not isinstance(data, dict) or set(data) - {"tool", "arguments", "reason", "taint"}:
        return _bad("the body must be a JSON object with tool, arguments, reason, taint only")
    tool, arguments = data.get("tool"), data.get("arguments")
    reason, taint = data.get("reason", ""), data.get("taint", [])
    if not isinstance(tool, str) or not _TOOL.match(tool):
        return _bad("tool must be a tool name (letters, digits, _ . : -; at most 64)")
    if not isinstance(arguments, dict):
        return _bad("arguments must be a JSON object")
    if not isinstance(reason, str) or len(reason) > 4000:
        return _bad("reason must be a string of at most 4000 characters")
    if not isinstance(taint, list) or len(taint) > _MAX_TAINT:
        return _bad(f"taint must be a list of at most {_MAX_TAINT} objects")
    shown: list[dict[str, Any]] = []
    for item in taint:
        if not isinstance(item, dict) or not isinstance(item.get("argument"), str):
            return _bad("each taint entry needs an argument name")
        sources = item.get("sources", [])
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            return _bad("taint sources must be a list of strings")
        excerpt = item.get("excerpt", "")
        shown.append(
            {
                "argument": item["argument"][:64],
                "sources": [s[:200] for s in sources[:8]],
                "excerpt": redact_tokens(str(excerpt)[:200]),
                "seen_by": "agent",
            }
        )
    return tool, arguments, reason, shown


async def hold_tool_call(
    rt: Runtime, *, raw_path: str, query: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> Outgoing:
    """Answer one ``POST /vertex/v1/approvals``. Never raises for bad input."""
    request_id = secrets.token_hex(8)
    entry: dict[str, Any] = {
        "request_id": request_id,
        "method": "POST",
        "path": PATH,
        "broker": rt.instance,
    }
    policy = rt.loaded.policy
    now = rt.clock()
    store = rt.store
    assert store is not None

    async def answer(decision: Decision, status: int, body_out: dict[str, Any] | None) -> Outgoing:
        entry.update(decision.to_json())
        try:
            await rt.audit.append(EntryKind.INTENT, entry)
            await rt.audit.append(
                EntryKind.OUTCOME,
                {
                    "request_id": request_id,
                    "status": status,
                    "reason": decision.reason.value,
                    "latency_us": 0,
                },
            )
        except AuditUnavailable:
            return refusal(
                Decision.deny(Reason.AUDIT_UNAVAILABLE, "audit", "the audit log cannot be written"),
                request_id,
            )
        if body_out is None:
            return refusal(decision, request_id)
        payload = json.dumps({**body_out, "request_id": request_id}).encode()
        return Outgoing(status, [("content-type", "application/json")], payload)

    try:
        single = single_headers(headers)
    except RequestRejected as exc:
        return await answer(_bad(str(exc)), 400, None)
    target = raw_path + ("?" + query if query else "")
    all_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
    try:
        auth = await rt.db(
            lambda: authenticate(
                policy=policy,
                lookup=store.get_token,
                method="POST",
                target=target,
                headers=single,
                all_headers=all_headers,
                body=body,
                now=now,
            )
        )
    except StoreError:
        return await answer(_store_down(), 503, None)
    entry.update(token_id=auth.claimed_id, auth=auth.mode)
    if auth.record is None:
        return await answer(auth.decision, auth.decision.http_status, None)
    record = auth.record
    entry["grant"] = record.grant
    skew = policy.settings.clock_skew_seconds
    nonce_only = Admission(
        token_id=record.token_id, now=now, nonce=auth.nonce, nonce_expires=now + 2 * skew + 1
    )
    try:
        admitted = await rt.db(lambda: store.admit(nonce_only))
    except StoreError:
        return await answer(_store_down(), 503, None)
    if not admitted.admitted:
        assert admitted.reason is not None
        denied = Decision.deny(admitted.reason, admitted.rule, admitted.message)
        return await answer(denied, denied.http_status, None)
    parsed = _parse(body)
    if isinstance(parsed, Decision):
        return await answer(parsed, 400, None)
    tool, arguments, reason, taint = parsed
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str).encode()
    ttl = float(parse_duration(policy.settings.approval_ttl))
    held = ApprovalRequest(
        approval_id=new_approval_id(),
        token_id=record.token_id,
        grant=record.grant,
        digest=binding_digest(
            token_id=record.token_id,
            upstream=f"tool:{tool}",
            method="CALL",
            path="",
            query="",
            content_type="application/json",
            body=canonical,
        ),
        created=now,
        expires=now + ttl,
        request={
            "method": "CALL",
            "upstream": f"tool:{tool}",
            "path": "",
            "query": "",
            "body": redact_tokens(canonical.decode()[:65_536]),
            "operation": f"tool:{tool}",
            "risk": "sensitive",
            "reason": redact_tokens(reason),
            "request_id": request_id,
        },
        taint=tuple(taint),
    )
    cap = policy.settings.max_pending_approvals
    entry["operation"] = f"tool:{tool}"
    if taint:
        entry["taint"] = taint
    try:
        found = await rt.db(lambda: store.approval_gate(held, now, max_pending=cap))
    except StoreError:
        return await answer(_store_down(), 503, None)
    except PendingApprovalsFull as full:
        entry["approval"] = {"state": "not_held", "pending": full.pending, "limit": full.limit}
        refused = too_many_pending(full)
        return await answer(refused, refused.http_status, None)
    entry["approval"] = {"id": found.approval_id, "state": found.state.value}
    decision = Decision.allow("approvals", f"approval {found.approval_id} is {found.state.value}")
    return await answer(
        decision, 200, {"approval_id": found.approval_id, "state": found.state.value}
    )
