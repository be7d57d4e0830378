"""Amount look-ups: how much does a request that names no amount move?

A Stripe refund without ``amount`` refunds whatever is left of the charge,
so the spend check must count that, not zero. Before deciding spend, the
broker reads the charge itself (with the vaulted secret, never the agent's
input beyond the validated object id). The read is a request leaving the
broker, so it is audited like any other: intent before, outcome after.
Anything unexpected means the amount is unknown, and the call is refused.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace

from vertex_tools.audit import EntryKind
from vertex_tools.broker.runtime import Runtime
from vertex_tools.decision import Decision, Reason
from vertex_tools.errors import AuditUnavailable, StoreError, UpstreamError, VaultError
from vertex_tools.policy.amounts import Amount
from vertex_tools.policy.engine import check_spend
from vertex_tools.policy.facts import AmountLookup, Verdict
from vertex_tools.policy.models import Policy, Upstream

__all__ = ["look_up_amount", "resolve_lookup"]

log = logging.getLogger("vertex_tools.broker")


def _unavailable(rule: str, why: str) -> Decision:
    return Decision.deny(
        Reason.AMOUNT_UNAVAILABLE,
        rule,
        f"the request names no amount and the broker could not learn it ({why}); "
        "state the amount explicitly",
    )


async def look_up_amount(
    rt: Runtime,
    *,
    request_id: str,
    upstream_name: str,
    upstream: Upstream,
    lookup: AmountLookup,
    rule: str,
) -> Amount | Decision:
    """Read the object the request refers to and return the amount it would move."""
    try:
        await rt.audit.append(
            EntryKind.INTENT,
            {
                "request_id": f"{request_id}.lookup",
                "for": request_id,
                "purpose": "amount_lookup",
                "upstream": upstream_name,
                "method": "GET",
                "path": lookup.path,
                "effect": "allow",
                "reason": "allowed",
                "rule": rule,
                "message": "broker-initiated read of the amount a request would move",
            },
        )
    except AuditUnavailable:
        raise
    status = 0
    try:
        secret = (await rt.secret(upstream.secret)).reveal()
        headers = [("Accept", "application/json")]
        headers += [(h, fmt.replace("{secret}", secret)) for h, fmt in upstream.injections]
        response = await rt.forwarder.forward(
            upstream.url,
            method="GET",
            path=lookup.path,
            query="",
            headers=headers,
            body=b"",
        )
        status = response.status
    except (VaultError, StoreError, UpstreamError) as exc:
        log.warning("amount lookup %s failed: %s", lookup.path, type(exc).__name__)
        await _outcome(rt, request_id, 502)
        return _unavailable(rule, f"{type(exc).__name__} reading {lookup.path}")
    await _outcome(rt, request_id, status)
    if status != 200:
        return _unavailable(rule, f"{lookup.path} answered {status}")
    try:
        data = json.loads(response.body)
        total = data[lookup.amount_field]
        minus = data.get(lookup.minus_field, 0) if lookup.minus_field else 0
        currency = data[lookup.currency_field]
    except (ValueError, KeyError, TypeError, AttributeError):
        return _unavailable(rule, f"{lookup.path} did not say its amount")
    if (
        isinstance(total, bool)
        or not isinstance(total, int)
        or isinstance(minus, bool)
        or not isinstance(minus, int)
        or not isinstance(currency, str)
        or total < 0
        or minus < 0
    ):
        return _unavailable(rule, f"{lookup.path} gave a malformed amount")
    return Amount(max(total - minus, 0), currency.lower())


async def _outcome(rt: Runtime, request_id: str, status: int) -> None:
    try:
        await rt.audit.append(
            EntryKind.OUTCOME,
            {"request_id": f"{request_id}.lookup", "status": status, "reason": "allowed"},
        )
    except AuditUnavailable as exc:
        log.error("outcome of the amount lookup for %s not recorded: %s", request_id, exc)


async def resolve_lookup(
    rt: Runtime, *, request_id: str, upstream_name: str, policy: Policy, verdict: Verdict
) -> Verdict:
    """Learn the amount of a verdict's request (look-up), then re-check spend with it.

    A stated amount (a partial refund) is counted, and refused when it is more than
    what the object has left; without one, what is left is counted.
    """
    resolved = verdict.resolved
    assert resolved is not None
    assert resolved.lookup is not None
    grant = policy.grants[resolved.grant]
    rule = f"grants.{resolved.grant}.spend"
    found = await look_up_amount(
        rt,
        request_id=request_id,
        upstream_name=upstream_name,
        upstream=policy.upstreams[upstream_name],
        lookup=resolved.lookup,
        rule=rule,
    )
    if isinstance(found, Decision):
        return Verdict(found, None)
    stated = resolved.lookup.stated
    if stated is not None:
        if stated > found.value:
            return Verdict(
                Decision.deny(
                    Reason.AMOUNT_INVALID,
                    rule,
                    f"the request states {stated}, more than the {found.value} "
                    f"{found.currency} that is left to move",
                ),
                None,
            )
        found = Amount(stated, found.currency)
    refused = check_spend(resolved.grant, grant, found)
    if refused is not None:
        return Verdict(refused, replace(resolved, amount=found, lookup=None))
    return Verdict(verdict.decision, replace(resolved, amount=found, lookup=None))
