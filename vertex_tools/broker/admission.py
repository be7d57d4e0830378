"""Step 3's inputs: the single-valued headers of a request, and its Admission."""

from __future__ import annotations

from vertex_tools.broker.auth import AuthResult
from vertex_tools.errors import RequestRejected
from vertex_tools.policy.engine import Verdict
from vertex_tools.policy.models import Grant
from vertex_tools.store import Admission, RateKey, SpendRequest

__all__ = ["admission_for", "single_headers"]

_SINGLE = ("authorization", "content-type")


def single_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name_b, value_b in raw:
        name = name_b.decode("latin-1").lower()
        value = value_b.decode("latin-1")
        if name in headers and (name in _SINGLE or name.startswith("x-vertex-")):
            raise RequestRejected(f"header {name!r} appears more than once")
        headers.setdefault(name, value)
    return headers


def admission_for(
    *, policy_grant: Grant | None, auth: AuthResult, now: float, verdict: Verdict, skew: int
) -> Admission:
    assert auth.record is not None
    token_id = auth.record.token_id
    nonce_expires = now + 2 * skew + 1
    if not verdict.decision.allowed or policy_grant is None:
        return Admission(token_id=token_id, now=now, nonce=auth.nonce, nonce_expires=nonce_expires)
    rates: list[RateKey] = []
    grant_name = auth.record.grant
    if policy_grant.rate is not None:
        if policy_grant.rate.token_rate is not None:
            rates.append(
                RateKey(
                    f"token:{token_id}", policy_grant.rate.token_rate, f"grants.{grant_name}.rate"
                )
            )
        if policy_grant.rate.grant_rate is not None:
            rates.append(
                RateKey(
                    f"grant:{grant_name}",
                    policy_grant.rate.grant_rate,
                    f"grants.{grant_name}.rate.per_grant",
                )
            )
    spend: SpendRequest | None = None
    resolved = verdict.resolved
    if resolved is not None and resolved.amount is not None and policy_grant.spend is not None:
        spend = SpendRequest(
            grant=grant_name,
            currency=resolved.amount.currency,
            amount=resolved.amount.value,
            per_day=policy_grant.spend.per_day,
            rule=f"grants.{grant_name}.spend.per_day",
        )
    return Admission(
        token_id=token_id,
        now=now,
        nonce=auth.nonce,
        nonce_expires=nonce_expires,
        rates=tuple(rates),
        spend=spend,
    )
