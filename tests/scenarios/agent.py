"""A scripted chat model driving LangChain's own agent loop (``create_agent``).

The model is the part we cannot trust, so the scenarios script it to do what a
prompt-injected model would: read the content, then copy what the attacker
wrote into the next tool call. Everything else is real: LangChain's agent
loop, the tools, the callbacks, the broker process, the stand-ins.

A model that is told a call is held for a human's approval retries that call
once (the scripted equivalent of "I'll try again after you approve").
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool
from pydantic import PrivateAttr

from vertex_tools.taint import ProvenanceHandler

HELD_MARKERS = ("HELD for a human's approval", "approval_pending")


@dataclass(frozen=True)
class Call:
    """One tool call the scripted model makes."""

    tool: str
    args: dict[str, Any]


class ScriptedChatModel(BaseChatModel):
    """Emits the scripted tool calls one per turn, then a final answer."""

    script: list[Call]
    _next: int = PrivateAttr(default=0)
    _retried: set[int] = PrivateAttr(default_factory=set)
    _ids: Any = PrivateAttr(default_factory=lambda: itertools.count(1))

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        last = messages[-1] if messages else None
        previous = self._next - 1
        if (
            isinstance(last, ToolMessage)
            and any(m in str(last.content) for m in HELD_MARKERS)
            and previous >= 0
            and previous not in self._retried
        ):
            self._retried.add(previous)
            call = self.script[previous]
        elif self._next < len(self.script):
            call = self.script[self._next]
            self._next += 1
        else:
            message = AIMessage(content="Done.")
            return ChatResult(generations=[ChatGeneration(message=message)])
        message = AIMessage(
            content="",
            tool_calls=[{"name": call.tool, "args": call.args, "id": f"call_{next(self._ids)}"}],
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


@dataclass
class Transcript:
    """What one agent run produced: every tool call and what the model read back."""

    messages: list[BaseMessage] = field(default_factory=list)

    def outputs(self, tool: str) -> list[str]:
        """What the model read from each call of ``tool``."""
        names = {
            c["id"]: c["name"]
            for m in self.messages
            if isinstance(m, AIMessage)
            for c in m.tool_calls
        }
        return [
            str(m.content)
            for m in self.messages
            if isinstance(m, ToolMessage) and names.get(m.tool_call_id or "") == tool
        ]

    def describe(self) -> str:
        """The run as text: each tool call and the start of what came back."""
        lines = []
        for m in self.messages:
            if isinstance(m, AIMessage):
                lines += [f"-> {c['name']}({c['args']})" for c in m.tool_calls]
            elif isinstance(m, ToolMessage):
                lines.append(f"<- {str(m.content)[:300]}")
        return "\n".join(lines)

    @property
    def held(self) -> bool:
        """Some call was held for a human's approval."""
        return any(
            isinstance(m, ToolMessage) and any(k in str(m.content) for k in HELD_MARKERS)
            for m in self.messages
        )


def run_agent(
    tools: list[BaseTool],
    script: list[Call],
    *,
    user: str,
    system: str,
    handler: ProvenanceHandler,
    extra_callbacks: Sequence[BaseCallbackHandler] = (),
) -> Transcript:
    """One run of LangChain's agent loop with the scripted model and a provenance ledger."""
    agent = create_agent(ScriptedChatModel(script=script), tools, system_prompt=system)
    result = agent.invoke(
        {"messages": [HumanMessage(user)]},
        config={"callbacks": [handler, *extra_callbacks], "recursion_limit": 40},
    )
    return Transcript(list(result["messages"]))
