"""The policy engine: ``decide(policy, grant, request) -> Verdict``.

Stateless and in memory: everything that needs shared state (rate limits,
the spend window, nonces) is checked afterwards by the store in one
transaction. Order of checks, first failure wins:

1. the token's grant exists in the loaded policy       grant_unknown
2. the request names the grant's upstream              upstream_mismatch
3. the path is unambiguous                             bad_path
4. http upstreams: a rule allows the method and path   not_allowed
   catalog upstreams: the catalog knows the operation  unknown_operation
                      the grant lists the operation    not_allowed
                      the grant lists the resource     resource_not_allowed
                      the provider's own checks        missing_filter, ...
5. with a spend ceiling, a money request states a readable amount in the
   grant's currency (or, for a refund without one, the broker will look the
   charge up)                                          amount_missing / amount_invalid /
                                                       currency_mismatch
6. the amount is within ``per_call``                   spend_per_call_exceeded

There is no default allow: a request reaches ``allow`` only through a rule or
a listed operation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from vertex_tools.decision import Decision, Reason
from vertex_tools.errors import ConfigError, RequestRejected
from vertex_tools.policy.amounts import Amount, AmountError, read_amount
from vertex_tools.policy.facts import AmountLookup, RequestFacts, Resolved, RiskClass, Verdict
from vertex_tools.policy.forms import parse_form
from vertex_tools.policy.models import Grant, Policy, Spend
from vertex_tools.policy.paths import check_path
from vertex_tools.providers import get_catalog
from vertex_tools.providers.catalog import CheckContext, LookupSpec, Rewrite

__all__ = [
    "Amount",
    "RequestFacts",
    "Resolved",
    "RiskClass",
    "Verdict",
    "check_spend",
    "decide",
]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_OBJECT_ID = re.compile(r"^[A-Za-z0-9_]{1,255}\Z")


def _deny(reason: Reason, rule: str, message: str) -> Verdict:
    return Verdict(Decision.deny(reason, rule, message), None)


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
        return _deny(
            Reason.GRANT_UNKNOWN,
            f"grants.{grant_name}",
            f"the token's grant {grant_name!r} is not in the loaded policy; "
            "issue a token for a grant that exists",
        )
    # 2. the upstream
    upstream = policy.upstreams.get(grant.upstream)
    if facts.upstream != grant.upstream or upstream is None:
        return _deny(
            Reason.UPSTREAM_MISMATCH,
            f"grants.{grant_name}.upstream",
            f"this token may only call upstream {grant.upstream!r}, not {facts.upstream!r}",
        )
    # 3. the path
    try:
        segments = check_path(facts.path)
    except RequestRejected as exc:
        return _deny(Reason.BAD_PATH, "paths", str(exc))
    # 4. rules or operations
    if upstream.provider == "http":
        return _decide_rules(grant_name, grant, facts, segments)
    return _decide_catalog(grant_name, grant, upstream.provider, facts, segments)


def _decide_rules(
    grant_name: str, grant: Grant, facts: RequestFacts, segments: list[str]
) -> Verdict:
    for index, rule in enumerate(grant.allow or ()):
        if rule.method == facts.method and rule.pattern.matches(segments):
            rule_name = f"grants.{grant_name}.allow[{index}]"
            operation = f"{rule.method} {rule.path}"
            spend = grant.spend
            amount: Amount | None = None
            if spend is not None and facts.method in _BODY_METHODS:
                read = _read(grant_name, spend, facts, spend.amount_field, spend.currency_field)
                if isinstance(read, Verdict):
                    return read
                amount = read
                refused = check_spend(grant_name, grant, amount)
                if refused is not None:
                    return Verdict(refused, None)
            resolved = Resolved(
                grant=grant_name,
                upstream=facts.upstream,
                operation=operation,
                risk=_risk(facts.method, amount),
                resource=None,
                amount=amount,
            )
            return Verdict(
                Decision.allow(rule_name, f"allowed by {rule_name} ({operation})"), resolved
            )
    return _deny(
        Reason.NOT_ALLOWED,
        f"grants.{grant_name}.allow",
        f"{facts.method} {facts.path} matches no rule of grant {grant_name!r}; "
        f"an operator can add a rule to grants.{grant_name}.allow",
    )


def _decide_catalog(
    grant_name: str, grant: Grant, provider: str, facts: RequestFacts, segments: list[str]
) -> Verdict:
    try:
        catalog = get_catalog(provider)
    except ConfigError as exc:
        return _deny(Reason.UNKNOWN_OPERATION, f"upstreams.{grant.upstream}.provider", str(exc))
    match = catalog.match(facts.method, segments)
    if match is None:
        return _deny(
            Reason.UNKNOWN_OPERATION,
            f"providers.{provider}",
            f"{facts.method} {facts.path} is not an operation the {provider} catalog knows; "
            "only catalogued operations are forwarded",
        )
    op, params = match
    operations = grant.operations or []
    if op.name not in operations:
        return _deny(
            Reason.NOT_ALLOWED,
            f"grants.{grant_name}.operations",
            f"operation {op.name} is not in grant {grant_name!r} "
            f"(allowed: {', '.join(operations) or 'none'}); an operator can add it",
        )
    rule = f"grants.{grant_name}.operations[{operations.index(op.name)}]"
    resource = op.resource_of(params)
    allowed: tuple[str, ...] = ()
    if catalog.resource_key is not None:
        allowed = tuple(getattr(grant, catalog.resource_key) or ())
    if resource is not None and not catalog.resource_allowed(resource, allowed):
        return _deny(
            Reason.RESOURCE_NOT_ALLOWED,
            f"grants.{grant_name}.{catalog.resource_key}",
            f"{op.name} on {resource!r} is outside grant {grant_name!r} "
            f"(allowed: {', '.join(allowed) or 'none'})",
        )
    query: str | None = None
    body: bytes | None = None
    if catalog.check is not None:
        outcome = catalog.check(
            CheckContext(
                operation=op, params=params, facts=facts, resources=allowed, grant=grant_name
            )
        )
        if isinstance(outcome, Decision):
            return Verdict(outcome, None)
        if isinstance(outcome, Rewrite):
            query, body = outcome.query, outcome.body
    amount: Amount | None = None
    lookup: AmountLookup | None = None
    if op.amount is not None:
        spend = grant.spend
        if spend is None:  # the loader refuses this policy; never allow money unbounded
            return _deny(
                Reason.NOT_ALLOWED,
                f"grants.{grant_name}.spend",
                f"{op.name} moves money and grant {grant_name!r} has no spend ceiling",
            )
        spec = op.amount.lookup
        if spec is not None and spec.always and not spec.from_path:
            read = _read(grant_name, spend, facts, op.amount.amount_field, op.amount.currency_field)
            missing = isinstance(read, Verdict) and read.decision.reason is Reason.AMOUNT_MISSING
            if isinstance(read, Verdict) and not missing:
                return read
            stated = None if isinstance(read, Verdict) else read.value
            if isinstance(read, Amount) and read.currency != spend.currency:
                refused = check_spend(grant_name, grant, read)  # an explicit other currency
                if refused is not None:
                    return Verdict(refused, None)
            if stated is not None and spend.per_call is not None and stated > spend.per_call:
                # Refused whatever the object says: no need to read it.
                refused = check_spend(grant_name, grant, Amount(stated, spend.currency))
                if refused is not None:
                    return Verdict(refused, None)
            found = _lookup(grant_name, spec, facts, params, stated)
            if isinstance(found, Verdict):
                return found
            lookup = found
        elif spec is not None and spec.from_path:
            # The object is named in the path (a confirm): its amount is always looked up,
            # never read from the body.
            found = _lookup(grant_name, spec, facts, params)
            if isinstance(found, Verdict):
                return found
            lookup = found
        else:
            read = _read(grant_name, spend, facts, op.amount.amount_field, op.amount.currency_field)
            if isinstance(read, Verdict):
                missing = read.decision.reason is Reason.AMOUNT_MISSING
                if not (missing and spec is not None):
                    return read
                found = _lookup(grant_name, spec, facts, params)
                if isinstance(found, Verdict):
                    return found
                lookup = found
            else:
                amount = read
                refused = check_spend(grant_name, grant, amount)
                if refused is not None:
                    return Verdict(refused, None)
    resolved = Resolved(
        grant=grant_name,
        upstream=facts.upstream,
        operation=op.name,
        risk=op.risk,
        resource=resource,
        amount=amount,
        lookup=lookup,
        query=query,
        body=body,
        params=tuple(params.items()),
    )
    return Verdict(Decision.allow(rule, f"allowed by {rule} ({op.name})"), resolved)


def _read(
    grant_name: str, spend: Spend, facts: RequestFacts, amount_field: str, currency_field: str
) -> Amount | Verdict:
    try:
        return read_amount(
            facts.content_type,
            facts.body,
            amount_field=amount_field,
            currency_field=currency_field,
            default_currency=spend.currency,
        )
    except AmountError as exc:
        reason = Reason.AMOUNT_MISSING if exc.missing else Reason.AMOUNT_INVALID
        return _deny(
            reason,
            f"grants.{grant_name}.spend",
            f"{exc}; this grant has a spend ceiling, so every {facts.method} "
            f"must state its amount in {amount_field!r}",
        )


def _lookup(
    grant_name: str,
    spec: LookupSpec,
    facts: RequestFacts,
    params: Mapping[str, str],
    stated: int | None = None,
) -> AmountLookup | Verdict:
    fields: dict[str, str]
    if spec.from_path:
        fields = dict(params)
    elif "json" in facts.content_type:
        try:
            data = json.loads(facts.body or b"{}")
            fields = {k: v for k, v in data.items() if isinstance(v, str)}
        except (ValueError, AttributeError, RecursionError):
            fields = {}
    else:
        fields = dict(parse_form(facts.body.decode("latin-1"), strict=False))
    for field_name, template in spec.sources:
        object_id = fields.get(field_name)
        if object_id is None:
            continue
        if not _OBJECT_ID.match(object_id):
            break
        return AmountLookup(
            path=template.replace("{id}", object_id),
            amount_field=spec.amount_field,
            minus_field=spec.minus_field,
            currency_field=spec.currency_field,
            stated=stated,
        )
    names = " or ".join(f for f, _ in spec.sources)
    return _deny(
        Reason.AMOUNT_MISSING,
        f"grants.{grant_name}.spend",
        f"no amount and no valid {names} to learn it from; state the amount",
    )


def check_spend(grant_name: str, grant: Grant, amount: Amount) -> Decision | None:
    """Currency and per-call checks of an amount; None when it passes."""
    spend = grant.spend
    if spend is None:
        return None
    rule = f"grants.{grant_name}.spend"
    if amount.currency != spend.currency:
        return Decision.deny(
            Reason.CURRENCY_MISMATCH,
            f"{rule}.currency",
            f"the ceiling is in {spend.currency}, the request is in {amount.currency}",
        )
    if spend.per_call is not None and amount.value > spend.per_call:
        return Decision.deny(
            Reason.SPEND_PER_CALL_EXCEEDED,
            f"{rule}.per_call",
            f"amount {amount.value} {amount.currency} is over the per-call ceiling of "
            f"{spend.per_call}; ask an operator to raise it or split the work",
        )
    return None
