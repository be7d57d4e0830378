"""Provider catalogs: the operations the broker knows for Stripe, GitHub and Supabase.

A catalog turns a raw request (method and path) into a named operation
(``refunds.create``) with a risk class, the arguments that steer it (control)
and the ones that only carry text (content), the resource it touches, how to
read the money it moves, and which fields of the answer third parties can
write (untrusted). Grants name operations and resources; the engine refuses
whatever the catalog does not know (``unknown_operation``).

This module is imported by the broker: no LangChain here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from vertex_tools.decision import Decision
from vertex_tools.policy.facts import RequestFacts, RiskClass

__all__ = [
    "ARGUMENT_ALIASES",
    "AmountSpec",
    "Catalog",
    "CheckContext",
    "LookupSpec",
    "Operation",
    "PathTemplate",
]

ARGUMENT_ALIASES = (
    ("filter", "filters"),
    ("intent", "payment_intent"),
    ("q", "query"),
    ("values", "rows"),
)
"""(catalog control name, tool argument name) where the toolkits spell a control
argument differently from the catalog: the agent's taint report names tool
arguments, the broker's checks name catalog controls."""

_PARAM = re.compile(r"^\{([a-z_][a-z0-9_]*)\}\Z")
# A final ``{name+}`` takes one or more segments (GitHub's file paths). Segments were
# already validated by check_path: no empty, dot or encoded-slash segments get here.
_REST = re.compile(r"^\{([a-z_][a-z0-9_]*)\+\}\Z")


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """``/repos/{owner}/{repo}/issues/{issue_number}``: literal segments and one-segment
    parameters, and optionally a last ``{name+}`` of one or more segments (joined by
    ``/``). A parameter never matches an empty segment."""

    text: str
    segments: tuple[str, ...]
    # Worked out once from ``segments``: matching runs for every request.
    rest: str | None = field(init=False, repr=False, compare=False)
    """The name of a final ``{name+}``, else None."""
    fixed: tuple[tuple[str, bool], ...] = field(init=False, repr=False, compare=False)
    """The other segments: (parameter name, True) or (literal text, False)."""
    literal_count: int = field(init=False, repr=False, compare=False)
    """How many segments are literal (more literal = more specific)."""

    def __post_init__(self) -> None:
        rest = _REST.match(self.segments[-1]) if self.segments else None
        fixed = self.segments[:-1] if rest else self.segments
        parts: list[tuple[str, bool]] = []
        for pattern in fixed:
            param = _PARAM.match(pattern)
            parts.append((param.group(1), True) if param else (pattern, False))
        object.__setattr__(self, "rest", rest.group(1) if rest else None)
        object.__setattr__(self, "fixed", tuple(parts))
        object.__setattr__(
            self,
            "literal_count",
            sum(1 for s in self.segments if not (_PARAM.match(s) or _REST.match(s))),
        )

    @classmethod
    def parse(cls, text: str) -> PathTemplate:
        """Parse a template; ``ValueError`` if malformed."""
        if not text.startswith("/") or "//" in text or text.endswith("/"):
            raise ValueError(f"bad path template {text!r}")
        segments = tuple(text[1:].split("/"))
        if any(_REST.match(s) for s in segments[:-1]):
            raise ValueError(f"bad path template {text!r}: only the last segment may be {{name+}}")
        return cls(text, segments)

    def match(self, segments: list[str]) -> dict[str, str] | None:
        """Path parameters when ``segments`` match, else None."""
        fixed, rest = self.fixed, self.rest
        if rest is None and len(segments) != len(fixed):
            return None
        if rest is not None and len(segments) <= len(fixed):
            return None
        params: dict[str, str] = {}
        if rest is not None:
            params[rest] = "/".join(segments[len(fixed) :])
        for (text, is_param), segment in zip(fixed, segments, strict=False):
            if is_param:
                params[text] = segment
            elif text != segment:
                return None
        return params


@dataclass(frozen=True, slots=True)
class LookupSpec:
    """How to learn the amount of a request that names none (a full refund).

    ``sources`` are (body field naming the object, path template with ``{id}``),
    tried in order; the amount moved is ``amount_field`` minus ``minus_field``.
    """

    sources: tuple[tuple[str, str], ...]
    amount_field: str = "amount"
    minus_field: str | None = None
    currency_field: str = "currency"
    from_path: bool = False
    always: bool = False
    """Look the object up even when the request states an amount: the object decides
    the currency and how much is left (a refund may not exceed the rest of the charge)."""
    """Sources name path parameters (``intent`` of ``/v1/payment_intents/{intent}/confirm``),
    not body fields; the request's body is then never read for an amount."""


@dataclass(frozen=True, slots=True)
class AmountSpec:
    """Where a money operation states its amount (form or JSON body)."""

    amount_field: str = "amount"
    currency_field: str = "currency"
    lookup: LookupSpec | None = None
    """When the amount is absent: look it up (refunds default to the whole charge)."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of a provider's API."""

    name: str
    method: str
    path: str
    risk: RiskClass
    summary: str
    control: tuple[str, ...] = ()
    content: tuple[str, ...] = ()
    resource: str | None = None
    """Template over path parameters naming the resource, e.g. ``{owner}/{repo}``."""
    amount: AmountSpec | None = None
    untrusted: tuple[str, ...] = ()
    """Response fields third parties can write: ``body``, ``[].body``, ``data[].description``."""
    scoped: bool = False
    """Confined to the grant's resources by the provider's check although its path names
    none (GitHub issue search, by its repo: qualifiers): the grant must list resources."""
    template: PathTemplate = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "template", PathTemplate.parse(self.path))

    def resource_of(self, params: Mapping[str, str]) -> str | None:
        """The resource this call touches, from its path parameters."""
        if self.resource is None:
            return None
        return self.resource.format_map(params)


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a provider's extra check sees."""

    operation: Operation
    params: Mapping[str, str]
    facts: RequestFacts
    resources: tuple[str, ...]
    grant: str


@dataclass(frozen=True, slots=True)
class Rewrite:
    """What the broker forwards instead of what it received: a capped query, or a
    body re-encoded from exactly the fields the broker read (so the upstream
    cannot read the request differently from the broker). None: unchanged."""

    query: str | None = None
    body: bytes | None = None


Check = Callable[[CheckContext], "Decision | Rewrite | None"]


@dataclass(frozen=True)
class Catalog:
    """All operations of one provider, and how the broker treats that provider."""

    provider: str
    operations: tuple[Operation, ...]
    inject: tuple[tuple[str, str], ...]
    """Default (header, format) pairs the secret is injected as."""
    resource_key: str | None = None
    """The grant key listing allowed resources: ``repos`` or ``tables``."""
    resource_pattern: str | None = None
    """Regular expression a resource named in a grant must match."""
    check: Check | None = None
    """Provider-specific checks after the operation and resource passed."""
    idempotency_header: str | None = None
    """Header carrying an idempotency key on POSTs (Stripe's Idempotency-Key): the broker
    sets it, chosen before the first attempt, so no retry can act twice."""
    api_origin: str | None = None
    """The base URL the provider names itself by in its answers (GitHub's ``url`` fields
    and ``Link`` headers): rewritten to the broker's ``/proxy/<upstream>`` for official
    SDKs, which follow those URLs."""
    _by_name: dict[str, Operation] = field(init=False, repr=False)
    _candidates: dict[tuple[str, int], tuple[Operation, ...]] = field(init=False, repr=False)
    """(method, segment count) -> the operations that can match it, in catalog order."""
    _literal: dict[tuple[str, tuple[str, ...]], Operation] = field(init=False, repr=False)
    """(method, segments) -> the first operation whose template has no parameter."""

    def __post_init__(self) -> None:
        names = [op.name for op in self.operations]
        if len(names) != len(set(names)):
            raise ValueError(f"{self.provider}: duplicate operation names")
        object.__setattr__(self, "_by_name", {op.name: op for op in self.operations})
        object.__setattr__(self, "_candidates", {})
        literal: dict[tuple[str, tuple[str, ...]], Operation] = {}
        for op in self.operations:
            if op.template.literal_count == len(op.template.segments):
                literal.setdefault((op.method, op.template.segments), op)
        object.__setattr__(self, "_literal", literal)

    def get(self, name: str) -> Operation | None:
        """The operation called ``name``, or None."""
        return self._by_name.get(name)

    @property
    def names(self) -> list[str]:
        """Every operation name, sorted."""
        return sorted(self._by_name)

    def match(self, method: str, segments: list[str]) -> tuple[Operation, dict[str, str]] | None:
        """The most specific operation for a method and validated path segments."""
        # A template without parameters that matches has the most literal segments any
        # matching template can have (a longer fixed part cannot match, a {name+} one
        # has fewer literals): it is the answer, as the first of equals.
        exact = self._literal.get((method, tuple(segments)))
        if exact is not None:
            return exact, {}
        best: tuple[Operation, dict[str, str]] | None = None
        for op in self._candidates_for(method, len(segments)):
            params = op.template.match(segments)
            if params is None:
                continue
            if best is None or op.template.literal_count > best[0].template.literal_count:
                best = (op, params)
        return best

    def _candidates_for(self, method: str, count: int) -> tuple[Operation, ...]:
        # Filled on first use, for the catalog's own methods only (a request's method is
        # the client's choice) and a path has at most MAX_PATH / 2 segments: bounded.
        # A race only computes the same tuple twice.
        key = (method, count)
        found = self._candidates.get(key)
        if found is None:
            if not any(op.method == method for op in self.operations):
                return ()
            found = tuple(
                op
                for op in self.operations
                if op.method == method
                and (
                    len(op.template.fixed) == count
                    if op.template.rest is None
                    else count > len(op.template.fixed)
                )
            )
            self._candidates[key] = found
        return found

    def resource_allowed(self, resource: str, allowed: tuple[str, ...]) -> bool:
        """Exact match, or ``owner/*`` for every repository of an owner."""
        for entry in allowed:
            if entry == resource:
                return True
            if (
                entry.endswith("/*")
                and resource.startswith(entry[:-1])
                and "/" not in resource[len(entry) - 1 :]
            ):
                return True
        return False
