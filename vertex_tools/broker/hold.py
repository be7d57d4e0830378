"""Step 3b of the path of one call: taint, and a human's approval when held.

Runs for a request the policy allowed and the store admitted. It returns the
decision to refuse with (deny, or approve: held), or None to forward. Held
requests go through :meth:`StateStore.approval_gate`, which uses an approval
of this exact request once, or holds the request for a human.

And after a call succeeded: the untrusted fields of the answer are
remembered for the run (:func:`remember_served`), so a later request of the
same run that copies them is caught even if the client reports nothing.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from vertex_tools.broker.approvals import (
    binding_digest,
    new_approval_id,
    outcome_decision,
    shown_request,
    too_many_pending,
)
from vertex_tools.broker.controls import control_values
from vertex_tools.broker.runtime import Runtime
from vertex_tools.broker.taint_gate import taint_gate
from vertex_tools.decision import Decision, Effect
from vertex_tools.policy.durations import parse_duration
from vertex_tools.policy.facts import RequestFacts, Resolved
from vertex_tools.policy.models import Policy
from vertex_tools.providers import get_catalog
from vertex_tools.providers.catalog import Operation
from vertex_tools.providers.fields import untrusted_texts
from vertex_tools.store import ApprovalRequest, ApprovalState, PendingApprovalsFull
from vertex_tools.taint import TaintReport

__all__ = [
    "HoldOutcome",
    "SentValues",
    "hold_step",
    "operation_of",
    "remember_sent",
    "remember_served",
]

_MAX_REMEMBERED_TEXT = 1_048_576


class SentValues:
    """The values each run sent before the upstream echoed them back.

    A value the agent sent first (the user's "hooli", a row it inserted) and an
    upstream then returned is the agent's own, not third-party content: it is not
    remembered as untrusted. Order matters: a value served first stays untrusted
    even after the agent sends it. Bounded: least recently used runs are forgotten
    first (forgetting only makes later answers count as untrusted: fail closed).
    """

    def __init__(self, *, max_runs: int = 10_000, max_values: int = 20_000) -> None:
        self._runs: OrderedDict[tuple[str, str], set[str]] = OrderedDict()
        self._max_runs = max_runs
        self._max_values = max_values
        self._lock = threading.Lock()  # the gate and the memory run on worker threads

    def add(self, key: tuple[str, str], values: Iterable[str]) -> None:
        """Note values a run sent."""
        with self._lock:
            found = self._runs.pop(key, None) or set()
            for value in values:
                if len(found) >= self._max_values:
                    break
                found.add(value)
            self._runs[key] = found
            while len(self._runs) > self._max_runs:
                self._runs.popitem(last=False)

    def sent(self, key: tuple[str, str]) -> frozenset[str]:
        """What the run sent so far."""
        with self._lock:
            return frozenset(self._runs.get(key, ()))


def _request_values(provider: str, facts: RequestFacts) -> set[str]:
    found: set[str] = set()
    for values in control_values(
        provider, None, None, facts, query=facts.query, body=facts.body
    ).values():
        for value in values:
            text = str(value)
            found.add(text)
            if provider == "supabase" and "." in text:
                # A PostgREST filter "eq.tyrell-4410" or "in.(a,b)" sends its values.
                operand = text.split(".", 1)[1]
                found.add(operand)
                found.update(v.strip('"') for v in operand.strip("()").split(","))
    return found


@dataclass(slots=True)
class HoldOutcome:
    """The step's decision (None: forward) and what the audit entry records."""

    decision: Decision | None
    entry: dict[str, Any] = field(default_factory=dict)


def operation_of(policy: Policy, upstream: str, resolved: Resolved | None) -> Operation | None:
    """The catalog operation a request resolved to (None for http upstreams)."""
    found = policy.upstreams.get(upstream)
    if found is None or found.provider == "http" or resolved is None:
        return None
    return get_catalog(found.provider).get(resolved.operation)


async def hold_step(
    rt: Runtime,
    *,
    policy: Policy,
    grant_name: str,
    token_id: str,
    request_id: str,
    resolved: Resolved,
    facts: RequestFacts,
    query: str,
    body: bytes,
    report: TaintReport | None,
    key: tuple[str, str],
) -> HoldOutcome:
    """Taint gate, then the approval gate for what it held."""
    grant = policy.grants[grant_name]
    if resolved.risk.value not in grant.taint.sensitive:
        return HoldOutcome(None)  # a read: no thread hop on the hot path for nothing
    provider = policy.upstreams[facts.upstream].provider
    # Off the event loop: checking many values against a large memory takes real time,
    # and one such request must not stall every other token's calls.
    result = await asyncio.to_thread(
        taint_gate,
        grant_name=grant_name,
        grant=grant,
        provider=provider,
        operation=operation_of(policy, facts.upstream, resolved),
        resolved=resolved,
        facts=facts,
        query=query,
        body=body,
        report=report,
        memory=rt.taint_memory,
        key=key,
    )
    entry: dict[str, Any] = {}
    if result.findings:
        entry["taint"] = [f.to_json() for f in result.findings]
    if result.untrusted_context:
        entry["untrusted_context"] = True
    decision = result.decision
    if decision is None or decision.effect is not Effect.APPROVE:
        return HoldOutcome(decision, entry)

    now = rt.clock()
    ttl = float(parse_duration(policy.settings.approval_ttl))
    amount = resolved.amount
    held = ApprovalRequest(
        approval_id=new_approval_id(),
        token_id=token_id,
        grant=grant_name,
        digest=binding_digest(
            token_id=token_id,
            upstream=facts.upstream,
            method=facts.method,
            path=facts.path,
            query=query,
            content_type=facts.content_type,
            body=body,
            headers=facts.headers,
        ),
        created=now,
        expires=now + ttl,
        request=shown_request(
            method=facts.method,
            upstream=facts.upstream,
            path=facts.path,
            query=query,
            body=body,
            operation=resolved.operation,
            risk=resolved.risk.value,
            resource=resolved.resource,
            amount=None if amount is None else amount.value,
            currency=None if amount is None else amount.currency,
            request_id=request_id,
            headers=facts.headers,
        ),
        taint=tuple(f.to_json() for f in result.findings),
    )
    store = rt.store
    assert store is not None
    cap = policy.settings.max_pending_approvals
    try:
        record = await rt.db(lambda: store.approval_gate(held, now, max_pending=cap))
    except PendingApprovalsFull as full:
        entry["approval"] = {"state": "not_held", "pending": full.pending, "limit": full.limit}
        return HoldOutcome(too_many_pending(full), entry)
    entry["approval"] = {"id": record.approval_id, "state": record.state.value}
    if record.state is ApprovalState.USED:
        entry["approval"]["approved_by"] = record.decided_by
    return HoldOutcome(outcome_decision(decision, record), entry)


def remember_sent(
    rt: Runtime, *, policy: Policy, facts: RequestFacts, key: tuple[str, str]
) -> None:
    """Note the values of a request about to be forwarded (see :class:`SentValues`)."""
    found = policy.upstreams.get(facts.upstream)
    # Only catalog answers are filtered by what was sent (http answers are remembered
    # for reads, whole): no body parsing on the hot path for nothing.
    if found is not None and found.provider != "http":
        rt.sent_values.add(key, _request_values(found.provider, facts))


def serves_untrusted(policy: Policy, facts: RequestFacts, resolved: Resolved | None) -> bool:
    """Whether a successful answer to this request has anything to remember (cheap: decided
    before handing :func:`remember_served` to a worker thread)."""
    found = policy.upstreams.get(facts.upstream)
    if found is None:
        return False
    if found.provider == "http":
        return found.responses == "untrusted" and facts.method in ("GET", "HEAD")
    operation = operation_of(policy, facts.upstream, resolved)
    return operation is not None and bool(operation.untrusted or found.untrusted_fields)


def remember_served(
    rt: Runtime,
    *,
    policy: Policy,
    facts: RequestFacts,
    resolved: Resolved | None,
    key: tuple[str, str],
    content_type: str,
    body: bytes,
) -> int:
    """Remember the untrusted parts of a successful answer for the run; how many texts.

    What the agent itself sent and the upstream echoed back (a created object) is
    not third-party content: an ``http`` upstream's answers are remembered for reads
    only, and a catalog answer's untrusted fields are skipped when they equal a value
    this run sent before (:class:`SentValues`), this request included.
    """
    upstream = facts.upstream
    found = policy.upstreams.get(upstream)
    if found is None or not body or not serves_untrusted(policy, facts, resolved):
        return 0
    memory = rt.taint_memory
    if found.provider == "http":
        # TaintMemory also indexes the decoded strings of a JSON answer: what the agent
        # copies is the decoded value, not its escaped spelling.
        memory.remember(key, body[:_MAX_REMEMBERED_TEXT].decode("utf-8", "replace"), upstream)
        return 1
    operation = operation_of(policy, upstream, resolved)
    if operation is None or "json" not in content_type:
        return 0
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return 0
    sent = rt.sent_values.sent(key)  # this request's values included (remember_sent)
    count = 0
    fields = [f for f in operation.untrusted if f not in found.trusted_fields]
    for path, text in untrusted_texts(payload, [*fields, *found.untrusted_fields]):
        if text in sent:
            continue
        memory.remember(key, text, f"{upstream} {operation.name} {path}")
        count += 1
    return count
