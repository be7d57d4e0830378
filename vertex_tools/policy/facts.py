"""The values the policy engine reads and returns: request facts, resolution, verdict."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from vertex_tools.decision import Decision
from vertex_tools.policy.amounts import Amount

__all__ = ["AmountLookup", "RequestFacts", "Resolved", "RiskClass", "Verdict"]


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
    headers: tuple[tuple[str, str], ...] = ()
    """The request's forwardable headers, names lower-case (a catalog check may refuse some)."""


@dataclass(frozen=True, slots=True)
class AmountLookup:
    """A read the broker makes (with the secret) to learn how much a request moves:
    a refund without an amount refunds whatever is left of the charge."""

    path: str
    amount_field: str
    minus_field: str | None
    currency_field: str
    stated: int | None = None
    """The amount the request states, if any: counted instead of the whole remainder,
    and refused when larger than it."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """A request mapped onto the policy: which operation, how risky, how much money."""

    grant: str
    upstream: str
    operation: str
    risk: RiskClass
    resource: str | None
    amount: Amount | None
    lookup: AmountLookup | None = None
    """Set when the amount must be read from the upstream before deciding spend."""
    query: str | None = None
    """The query to forward when the broker rewrote it (a row cap); None: unchanged."""
    body: bytes | None = None
    """The body to forward when the broker re-encoded it; None: unchanged."""
    params: tuple[tuple[str, str], ...] = ()
    """The catalog operation's path parameters (``owner``, ``repo``, ``charge``...)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision and, when the request could be resolved, what it resolved to."""

    decision: Decision
    resolved: Resolved | None
