"""``guard(tool)``: taint checks and output provenance for any LangChain tool.

    >>> send = guard(send_email, control=["to"], on_taint="deny")   # doctest: +SKIP
    >>> reader = guard(read_web_page, output="untrusted", sensitive=False)  # doctest: +SKIP

Before the wrapped tool runs, each control argument is checked against the
run's provenance ledger (filled by a :class:`ProvenanceHandler` in the run's
callbacks). Order, first match wins:

1. the tool is not sensitive                      -> run it
2. no ledger in the run                           -> refuse (``no_ledger``): taint
                                                     cannot be judged, so fail closed
3. a control argument is tainted                  -> ``on_taint``
4. strict, and untrusted content entered the run  -> approve
5. the ledger overflowed                          -> approve (as if strict)
6. otherwise                                      -> run it

``approve`` asks ``approver``: :class:`BrokerApprovals` holds the call at the
broker, where ``vertex approvals`` decides it with every other held request, or
any callable a human answers through (True to run, False to refuse, None while
undecided). With no approver the call cannot run, and the model is told so.

Refusals are returned as the tool's output (the model reads why); they never
run the wrapped tool. The wrapped tool's output is recorded under ``output``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from pydantic import ConfigDict, Field

from vertex_tools.client import BrokerClient
from vertex_tools.errors import BrokerRefused
from vertex_tools.taint._callback import INNER_TAG, ledger_for
from vertex_tools.taint._ledger import ProvenanceLedger, Taint

__all__ = ["Answer", "BrokerApprovals", "Effect", "GuardedTool", "HeldCall", "guard"]

Effect = Literal["deny", "approve", "allow"]


@dataclass(frozen=True, slots=True)
class HeldCall:
    """A call a guard holds for a human: the tool, its exact arguments, and why."""

    tool: str
    arguments: Mapping[str, Any]
    tainted: tuple[Taint, ...]
    reason: str

    def describe(self) -> str:
        """One paragraph for a person deciding."""
        lines = [f"{self.tool}({', '.join(f'{k}={v!r}' for k, v in self.arguments.items())})"]
        lines.append(f"reason: {self.reason}")
        for taint in self.tainted:
            sources = ", ".join(sorted({h.source for h in taint.hits}))
            lines.append(f"  {taint.argument!r} came from {sources}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Answer:
    """An approver's answer that names the approval: ``approved`` True (run it now),
    False (denied) or None (still pending)."""

    approved: bool | None
    approval_id: str


Approver = Callable[[HeldCall], "bool | Answer | None"]


class BrokerApprovals:
    """An approver that holds calls at the broker, where ``vertex approvals`` decides them
    (with every other held request) and the audit log records them.

        >>> send = guard(send_email, control=["to"], on_taint="approve",
        ...              approver=BrokerApprovals(client))          # doctest: +SKIP
    """

    def __init__(self, client: BrokerClient) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"BrokerApprovals({self._client!r})"

    def __call__(self, held: HeldCall) -> Answer:
        """Ask the broker; the same call asked again finds the same approval."""
        taint = [
            {
                "argument": t.argument,
                "sources": sorted({h.source for h in t.hits}),
                "excerpt": t.hits[0].excerpt if t.hits else "",
            }
            for t in held.tainted
        ]
        answer = self._client.request_approval(
            held.tool, held.arguments, reason=held.reason, taint=taint
        )
        state = answer["state"]
        approved = True if state == "used" else False if state == "denied" else None
        return Answer(approved, answer["approval_id"])


@dataclass(frozen=True, slots=True)
class _Config:
    control: tuple[str, ...] | None
    content: frozenset[str]
    on_taint: Effect
    strict: bool
    sensitive: bool


def _refused(tool: str, reason: str, rule: str, message: str, advice: str) -> str:
    return f"REFUSED by vertex guard ({reason}, rule {rule}): {message}. {advice}"


class GuardedTool(BaseTool):
    """A tool wrapped by :func:`guard` (made by it; not built directly)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inner: BaseTool = Field(exclude=True, repr=False)
    guard_config: _Config = Field(exclude=True, repr=False)
    approver: Approver | None = Field(default=None, exclude=True, repr=False)

    def _arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if kwargs:
            return dict(kwargs)
        if not args:
            return {}
        # A positional input is the tool's single argument (``tool_input`` for a
        # ``Tool(func=...)``): named so, a control declared by that name is checked.
        names = _argument_names(self.inner) or []
        return {names[0] if len(names) == 1 else "input": args[0]}

    def _controls(self, arguments: Mapping[str, Any]) -> list[str]:
        config = self.guard_config
        if config.control is not None:
            return [c for c in config.control if c not in config.content]
        return [name for name in arguments if name not in config.content]

    def _check(self, arguments: dict[str, Any], ledger: ProvenanceLedger | None) -> str | None:
        """None to run the tool, else the text the model reads instead."""
        config = self.guard_config
        rule = f"guard:{self.name}"
        if not config.sensitive:
            return None
        if ledger is None:
            return _refused(
                self.name,
                "no_ledger",
                rule,
                "this guarded tool ran without a provenance ledger, so the origin of its "
                "arguments is unknown",
                "The agent's builder must add vertex_tools.ProvenanceHandler to the run's "
                "callbacks.",
            )
        report = ledger.label(arguments, self._controls(arguments))
        held: HeldCall | None = None
        if report.tainted:
            described = "; ".join(
                f"{t.argument!r} came from "
                + ", ".join(sorted({h.source for h in t.hits}))
                + (f" ({t.hits[0].excerpt!r})" if t.hits and t.hits[0].excerpt else "")
                for t in report.tainted
            )
            message = f"{described}, and not from the user"
            if config.on_taint == "deny":
                return _refused(
                    self.name,
                    "tainted_argument",
                    f"{rule}.on_taint",
                    message,
                    "Do not retry; tell the user which value came from retrieved content, "
                    "and let them state it themselves if they want it.",
                )
            if config.on_taint == "approve":
                held = HeldCall(self.name, arguments, report.tainted, message)
        elif (config.strict and report.untrusted_seen) or report.overflowed:
            held = HeldCall(
                self.name,
                arguments,
                (),
                "untrusted content has entered this run and the tool is strict"
                if config.strict
                else "more untrusted content entered this run than can be checked",
            )
        if held is None:
            return None
        try:
            answer = self.approver(held) if self.approver is not None else None
        except BrokerRefused as refusal:
            # The broker would not even hold it (a revoked token, too many pending
            # approvals, ...): the tool does not run, and the agent reads why.
            decision = refusal.decision
            return _refused(
                self.name,
                decision.reason.value,
                decision.rule or "-",
                f"the broker refused to hold it for approval: {decision.message}",
                "Do not retry now; tell the user.",
            )
        approval_id = answer.approval_id if isinstance(answer, Answer) else None
        decided = answer.approved if isinstance(answer, Answer) else answer
        if decided is True:
            return None
        reason = "approval_denied" if decided is False else "approval_pending"
        named = f" (approval {approval_id})" if approval_id else ""
        if decided is False:
            advice = "A person denied it; do not retry."
        elif approval_id:
            advice = (
                f"HELD for a human's approval: an operator can run `vertex approvals approve "
                f"{approval_id}`; tell the user, and retry exactly the same call after that."
            )
        elif self.approver is None:
            advice = (
                "No approver is configured for this tool, so it cannot run; tell the user "
                "(the agent's builder can pass approver=BrokerApprovals(client) to guard)."
            )
        else:
            advice = "Tell the user it waits for their approval; retry the same call after that."
        return _refused(
            self.name,
            reason,
            f"{rule}.approve",
            f"a human's approval is needed{named}: {held.reason}",
            advice,
        )

    def _prepare(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        run_manager: CallbackManagerForToolRun | AsyncCallbackManagerForToolRun | None,
    ) -> tuple[str | None, Any, RunnableConfig]:
        """The refusal (or None), the wrapped tool's input and its config."""
        arguments = self._arguments(args, kwargs)
        refused = self._check(arguments, ledger_for(run_manager))
        callbacks = run_manager.get_child() if run_manager is not None else None
        config: RunnableConfig = {"callbacks": callbacks, "tags": [INNER_TAG]}
        return refused, arguments if kwargs else args[0], config

    def _run(
        self,
        *args: Any,
        run_manager: CallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        refused, tool_input, config = self._prepare(args, kwargs, run_manager)
        if refused is not None:
            return refused
        return self.inner.invoke(tool_input, config=config)

    async def _arun(
        self,
        *args: Any,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        refused, tool_input, config = self._prepare(args, kwargs, run_manager)
        if refused is not None:
            return refused
        return await self.inner.ainvoke(tool_input, config=config)


def _argument_names(tool: BaseTool) -> list[str] | None:
    try:
        return list(tool.args)
    except (TypeError, ValueError, AttributeError, NotImplementedError):  # unreadable schema
        return None


def guard(
    tool: BaseTool,
    *,
    control: Iterable[str] | None = None,
    content: Iterable[str] = (),
    output: Literal["untrusted", "trusted", "neutral"] | None = None,
    on_taint: Effect = "deny",
    strict: bool = False,
    sensitive: bool = True,
    approver: Approver | None = None,
) -> GuardedTool:
    """Wrap ``tool`` with taint checks; see the module docstring.

    ``control``: the arguments that steer the action (default: every argument not
    listed in ``content``: fail closed). ``output``: how far the tool's output can be
    trusted (default untrusted: anything a third party can write). ``sensitive=False``
    for tools that only read (no checks, output still recorded). ``output`` defaults to
    the tool's own declaration (vertex_tools' provider tools record their untrusted
    fields themselves), else untrusted.
    """
    if on_taint not in ("deny", "approve", "allow"):
        raise ValueError(f"on_taint must be deny, approve or allow, not {on_taint!r}")
    if output is not None and output not in ("untrusted", "trusted", "neutral"):
        raise ValueError(f"output must be untrusted, trusted or neutral, not {output!r}")
    if isinstance(control, str) or isinstance(content, str):
        raise ValueError("control and content are lists of argument names, not a string")
    controls = None if control is None else tuple(control)
    contents = frozenset(content)
    names = _argument_names(tool)
    if names is not None:
        for kind, declared in (("control", controls or ()), ("content", contents)):
            unknown = sorted(set(declared) - set(names))
            if unknown:
                # A misspelt name would silently never be checked: refuse it.
                raise ValueError(
                    f"{kind} names {unknown}, not arguments of the tool {tool.name!r} "
                    f"(its arguments: {sorted(names)})"
                )
    config = _Config(
        control=controls,
        content=contents,
        on_taint=on_taint,
        strict=strict,
        sensitive=sensitive,
    )
    metadata = dict(tool.metadata or {})
    metadata["vertex_output"] = output or metadata.get("vertex_output", "untrusted")
    return GuardedTool(
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema,
        return_direct=tool.return_direct,
        inner=tool,
        guard_config=config,
        approver=approver,
        metadata=metadata,
        handle_tool_error=tool.handle_tool_error,
    )
