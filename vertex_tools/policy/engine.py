"""The policy engine: ``decide(policy, grant, request) -> Verdict``.

Stateless and in memory: everything that needs shared state (rate limits,
the spend window, nonces) is checked afterwards by the store in one
transaction. Order of checks, first failure wins:

1. the token's grant exists in the loaded policy       grant_unknown
2. the request names the grant's upstream              upstream_mismatch
3. the path is unambiguous                             bad_path
4. a rule of the grant allows the method and path      not_allowed
5. with a spend ceiling, a body-bearing request carries a readable amount
   in the grant's currency                             amount_missing / amount_invalid /
                                                       currency_mismatch
6. the amount is within ``per_call``                   spend_per_call_exceeded

There is no default allow: a request reaches ``allow`` only through a rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from vertex_tools.decision import Decision, Reason
from vertex_tools.errors import RequestRejected
from vertex_tools.policy.amounts import Amount, AmountError, read_amount
from vertex_tools.policy.models import Grant, Policy
from vertex_tools.policy.paths import check_path

__all__ = ["Amount", "RequestFacts", "Resolved", "RiskClass", "Verdict", "decide"]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class RiskClass(StrEnum):
    """How much harm an operation can do; catalogs assign one to every operation."""

    READ = "read"
    WRITE = "write"
    MONEY = "money"
    DESTRUCTIVE = "destructive"


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the broker knows about an incoming request before deciding."""

    upstream: str
    method: str
    path: str
    query: str
    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Resolved:
    """A request mapped onto the policy: which operation, how risky, how much money."""

    grant: str
    upstream: str
    operation: str
    risk: RiskClass
    resource: str | None
    amount: Amount | None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision and, when the request could be resolved, what it resolved to."""

    decision: Decision
    resolved: Resolved | None


def _risk(method: str, amount: Amount | None) -> RiskClass:
    if amount is not None:
        return RiskClass.MONEY
    if method == "DELETE":
        return RiskClass.DESTRUCTIVE
    if method in ("GET", "HEAD"):
        return RiskClass.READ
    return RiskClass.WRITE


def decide(policy: Policy, grant_name: str, facts: RequestFacts) -> Verdict:
    """Decide one request made with a token of ``grant_name``. Never raises for bad input."""
    # 1. the grant
    grant = policy.grants.get(grant_name)
    if grant is None:
        return Verdict(
            Decision.deny(
                Reason.GRANT_UNKNOWN,
                f"grants.{grant_name}",
                f"the token's grant {grant_name!r} is not in the loaded policy; "
                "issue a token for a grant that exists",
            ),
            None,
        )
    # 2. the upstream
    if facts.upstream != grant.upstream:
        return Verdict(
            Decision.deny(
                Reason.UPSTREAM_MISMATCH,
                f"grants.{grant_name}.upstream",
                f"this token may only call upstream {grant.upstream!r}, not {facts.upstream!r}",
            ),
            None,
        )
    # 3. the path
    try:
        segments = check_path(facts.path)
    except RequestRejected as exc:
        return Verdict(Decision.deny(Reason.BAD_PATH, "paths", str(exc)), None)
    # 4. the rules
    for index, rule in enumerate(grant.allow):
        if rule.method == facts.method and rule.pattern.matches(segments):
            rule_name = f"grants.{grant_name}.allow[{index}]"
            operation = f"{rule.method} {rule.path}"
            return _spend(grant_name, grant, facts, rule_name, operation)
    return Verdict(
        Decision.deny(
            Reason.NOT_ALLOWED,
            f"grants.{grant_name}.allow",
            f"{facts.method} {facts.path} matches no rule of grant {grant_name!r}; "
            "an operator can add a rule to grants." + grant_name + ".allow",
        ),
        None,
    )


def _spend(
    grant_name: str, grant: Grant, facts: RequestFacts, rule: str, operation: str
) -> Verdict:
    spend = grant.spend
    amount: Amount | None = None
    # 5. the amount
    if spend is not None and facts.method in _BODY_METHODS:
        spend_rule = f"grants.{grant_name}.spend"
        try:
            amount = read_amount(
                facts.content_type,
                facts.body,
                amount_field=spend.amount_field,
                currency_field=spend.currency_field,
                default_currency=spend.currency,
            )
        except AmountError as exc:
            reason = Reason.AMOUNT_MISSING if exc.missing else Reason.AMOUNT_INVALID
            return Verdict(
                Decision.deny(
                    reason,
                    spend_rule,
                    f"{exc}; this grant has a spend ceiling, so every {facts.method} "
                    f"must state its amount in {spend.amount_field!r}",
                ),
                None,
            )
        if amount.currency != spend.currency:
            return Verdict(
                Decision.deny(
                    Reason.CURRENCY_MISMATCH,
                    f"{spend_rule}.currency",
                    f"the ceiling is in {spend.currency}, the request is in {amount.currency}",
                ),
                None,
            )
        # 6. per call
        if spend.per_call is not None and amount.value > spend.per_call:
            return Verdict(
                Decision.deny(
                    Reason.SPEND_PER_CALL_EXCEEDED,
                    f"{spend_rule}.per_call",
                    f"amount {amount.value} {amount.currency} is over the per-call ceiling of "
                    f"{spend.per_call}; ask an operator to raise it or split the work",
                ),
                None,
            )
    resolved = Resolved(
        grant=grant_name,
        upstream=facts.upstream,
        operation=operation,
        risk=_risk(facts.method, amount),
        resource=None,
        amount=amount,
    )
    return Verdict(Decision.allow(rule, f"allowed by {rule} ({operation})"), resolved)
