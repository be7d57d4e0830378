"""The taint step: refuse or hold a sensitive request steered by untrusted content.

Runs after the policy allowed a request (DESIGN.md, "The path of one call",
step 3). Two sources of evidence, combined:

1. the agent's report (``X-Vertex-Taint``, signed with the request): which
   of its arguments came from untrusted content, which from the user, and
   whether untrusted content has entered the run at all;
2. the broker's own memory of the untrusted fields it served to the same run
   (token and ``X-Vertex-Run``): every control value of the request is checked
   against it, so taint survives a client that fails to report it. A value the
   agent's report names as the user's own (``trusted``) is not held against it.
   A client that lies (a compromised agent process, which holds the token) could
   name a fresh run or claim a value is the user's; a grant with
   ``taint.scope = "token"`` closes both: the memory covers everything served to
   the token and no claim clears it.

Order, first match wins (only for the risk classes in ``taint.sensitive``):

* a tainted control argument           -> ``taint.control`` (deny, approve, allow)
* strict, and untrusted content seen   -> approve (``untrusted_context``)
* memory overflowed for the run        -> approve, as if strict (fail closed)

A malformed report is refused (``taint_report_invalid``): a client that
reports must report correctly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vertex_tools.broker.answers import redact_tokens
from vertex_tools.broker.controls import UNCHECKED, control_values
from vertex_tools.decision import Decision, Effect, Reason
from vertex_tools.policy.facts import RequestFacts, Resolved
from vertex_tools.policy.models import Grant
from vertex_tools.providers.catalog import ARGUMENT_ALIASES, Operation
from vertex_tools.taint import TaintMemory, TaintReport

__all__ = ["RUN_HEADER", "TAINT_HEADER", "Finding", "GateResult", "read_report", "taint_gate"]

TAINT_HEADER = "x-vertex-taint"
RUN_HEADER = "x-vertex-run"
_NO_RUN = "-"
_EVERY_RUN = "*"


@dataclass(frozen=True, slots=True)
class Finding:
    """One tainted argument and where its value came from."""

    argument: str
    sources: tuple[str, ...]
    excerpt: str
    seen_by: str
    """``agent`` (the client's report) or ``broker`` (the broker's memory of the run)."""

    def to_json(self) -> dict[str, Any]:
        """The audit log's and the approval's view of it (no vertex token in any of it)."""
        return {
            "argument": redact_tokens(self.argument),
            "sources": [redact_tokens(s) for s in self.sources],
            "excerpt": redact_tokens(self.excerpt),
            "seen_by": self.seen_by,
        }


@dataclass(frozen=True, slots=True)
class GateResult:
    """``decision`` None: go on. Findings are recorded whatever the decision."""

    decision: Decision | None
    findings: tuple[Finding, ...]
    untrusted_context: bool


def read_report(headers: Mapping[str, str]) -> TaintReport | Decision | None:
    """The agent's taint report, None when it sent none, a refusal when malformed."""
    raw = headers.get(TAINT_HEADER)
    if raw is None:
        return None
    try:
        report = TaintReport.from_header(raw)
    except ValueError as exc:
        return Decision.deny(
            Reason.TAINT_REPORT_INVALID,
            "taint",
            f"the X-Vertex-Taint header is malformed ({exc}); fix or upgrade the client",
        )
    run = headers.get(RUN_HEADER)
    if run is not None and run != report.run_id:
        return Decision.deny(
            Reason.TAINT_REPORT_INVALID,
            "taint",
            "X-Vertex-Run and the run of X-Vertex-Taint differ; send one run id",
        )
    return report


def run_key(
    token_id: str, headers: Mapping[str, str], report: TaintReport | None, *, scope: str = "run"
) -> tuple[str, str]:
    """The memory key of a request: its token and run (``-`` when the client names none;
    ``*`` for every request of the token when the grant's ``taint.scope`` is ``token``)."""
    if scope == "token":
        return token_id, _EVERY_RUN
    run = report.run_id if report is not None else headers.get(RUN_HEADER, _NO_RUN)
    return token_id, run[:64] or _NO_RUN


def _alias_in(name: str, arguments: set[str]) -> bool:
    return any(control == name and arg in arguments for control, arg in ARGUMENT_ALIASES)


def _preview(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def taint_gate(
    *,
    grant_name: str,
    grant: Grant,
    provider: str,
    operation: Operation | None,
    resolved: Resolved,
    facts: RequestFacts,
    query: str,
    body: bytes,
    report: TaintReport | None,
    memory: TaintMemory,
    key: tuple[str, str],
) -> GateResult:
    """Decide the taint step for one allowed request."""
    rules = grant.taint
    if resolved.risk.value not in rules.sensitive:
        return GateResult(None, (), False)
    findings: list[Finding] = []
    reported: set[str] = set()
    trusted: set[str] = set()
    if report is not None:
        # Under scope "token" the broker's memory is authoritative: no claim clears it.
        trusted = set(report.trusted) if rules.scope == "run" else set()
        trusted |= {name for name, arg in ARGUMENT_ALIASES if arg in trusted}
        for taint in report.tainted:
            reported.add(taint.argument)
            findings.append(
                Finding(
                    taint.argument,
                    tuple(dict.fromkeys(h.source for h in taint.hits)),
                    taint.hits[0].excerpt if taint.hits else "",
                    "agent",
                )
            )
    for name, values in control_values(
        provider, operation, resolved, facts, query=query, body=body
    ).items():
        if name in reported or name in trusted or _alias_in(name, reported):
            continue
        if name == UNCHECKED:
            # Fail closed: what the broker cannot read exactly, it cannot call clean.
            why = str(values[0]) if values else "the request cannot be checked"
            findings.append(Finding("(request)", (why,), "", "broker"))
            continue
        for value in values:
            hits = memory.find(key, value)
            if hits:
                findings.append(
                    Finding(
                        name,
                        tuple(dict.fromkeys(h.source for h in hits)),
                        hits[0].excerpt,
                        "broker",
                    )
                )
                break
    seen = memory.seen(key) or (report is not None and report.untrusted_seen)
    overflowed = memory.overflowed(key) or (report is not None and report.overflowed)
    rule = f"grants.{grant_name}.taint"
    if findings:
        described = "; ".join(
            f"{f.argument!r} came from {', '.join(f.sources[:3])}"
            + (f" ({_preview(f.excerpt)!r})" if f.excerpt else "")
            for f in findings[:5]
        )
        message = (
            f"{resolved.operation} is steered by untrusted content: {described}, and not by "
            "the user"
        )
        if rules.control == "deny":
            return GateResult(
                Decision.deny(
                    Reason.TAINTED_ARGUMENT,
                    f"{rule}.control",
                    message + "; if the user really wants this, they must state the value "
                    'themselves, or an operator can set taint.control = "approve"',
                ),
                tuple(findings),
                seen,
            )
        if rules.control == "approve":
            return GateResult(
                Decision(Effect.APPROVE, Reason.TAINTED_ARGUMENT, f"{rule}.control", message),
                tuple(findings),
                seen,
            )
        return GateResult(None, tuple(findings), seen)
    if (rules.strict and seen) or overflowed:
        why = (
            "more untrusted content entered this run than the broker can check"
            if overflowed and not (rules.strict and seen)
            else "untrusted content has entered this run and the grant is strict"
        )
        return GateResult(
            Decision(
                Effect.APPROVE,
                Reason.UNTRUSTED_CONTEXT,
                f"{rule}.strict",
                f"{resolved.operation} needs a human's approval: {why}",
            ),
            (),
            seen,
        )
    return GateResult(None, (), seen)
