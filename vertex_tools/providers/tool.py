"""LangChain tools that call a provider through the broker (agent side).

A tool holds a :class:`~vertex_tools.BrokerClient` (which holds the token);
the client is excluded from the tool's schema, repr and serialisation, so
the token never reaches the model, a trace, or a saved tool. What the model
sees is the argument schema (pydantic, with descriptions written for it) and
the tool's output:

* an upstream answer, as JSON text;
* a refusal by the broker, as readable text: the reason, the rule, what to
  do. A refusal is an answer, not a crash of the agent loop;
* a broker that cannot be reached raises :class:`BrokerUnavailable`: that is
  the builder's problem, not the model's.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field, field_serializer

from vertex_tools.client import BrokerClient
from vertex_tools.decision import Effect
from vertex_tools.errors import BrokerRefused
from vertex_tools.providers import get_catalog
from vertex_tools.providers.catalog import ARGUMENT_ALIASES
from vertex_tools.providers.fields import untrusted_texts
from vertex_tools.taint import Source
from vertex_tools.taint._callback import ProvenanceHandler, handler_for
from vertex_tools.taint._headers import RUN_HEADER, TAINT_HEADER

__all__ = ["ToolRequest", "VertexTool", "refusal_text"]

MAX_OUTPUT_CHARS = 20_000


@dataclass(frozen=True, slots=True)
class ToolRequest:
    """The HTTP request one tool call becomes."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    data: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def refusal_text(exc: BrokerRefused) -> str:
    """What the model reads when the broker refuses a call."""
    d = exc.decision
    if d.effect is Effect.APPROVE:
        return (
            f"HELD for a human's approval ({d.reason.value}, rule {d.rule}): {d.message}. "
            "Tell the user it waits for their approval; retry exactly the same call after that."
        )
    if exc.status == 429:
        advice = "Wait before trying again."
    elif exc.status == 401:
        advice = "The tool's credentials are not valid; tell the user."
    else:
        advice = "Do not retry the same request; tell the user what was refused and why."
    return f"REFUSED by policy ({d.reason.value}, rule {d.rule}): {d.message}. {advice}"


class VertexTool(BaseTool):
    """Base of every provider tool: one catalog operation, called through the broker."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: BrokerClient = Field(exclude=True, repr=False)
    """The broker client; never part of the schema, repr or serialisation."""
    upstream: str
    """The policy's upstream name for this provider."""
    operation: ClassVar[str]
    """The catalog operation this tool performs (e.g. ``refunds.create``)."""
    provider: ClassVar[str] = ""
    """The catalog provider (``stripe``, ``github``, ``supabase``)."""
    control_args: ClassVar[tuple[str, ...] | None] = None
    """Arguments that steer the call (checked for taint); default: the schema's fields
    the catalog operation lists as control."""
    metadata: dict[str, Any] | None = Field(default_factory=lambda: {"vertex_output": "self"})
    """``self``: the tool records the fields of its answer third parties can write into
    the run's ledger itself; the rest of its answer is the provider's own data."""

    @field_serializer("args_schema", when_used="always", check_fields=False)
    def _schema_name(self, schema: Any) -> str | None:
        # args_schema is a class; serialise its name so model_dump_json() works.
        return getattr(schema, "__name__", None) if schema is not None else None

    def build_request(self, **kwargs: Any) -> ToolRequest:
        """Turn validated arguments into an HTTP request."""
        raise NotImplementedError

    def format_response(self, status: int, payload: Any) -> str:
        """Turn the upstream's answer into the text the model reads."""
        text = json.dumps(payload, ensure_ascii=False, default=str)
        if len(text) > MAX_OUTPUT_CHARS:
            text = text[:MAX_OUTPUT_CHARS] + " ...[truncated]"
        return text if 200 <= status < 300 else f"The API answered {status}: {text}"

    def control_names(self) -> tuple[str, ...]:
        """The arguments checked for taint."""
        if self.control_args is not None:
            return self.control_args
        op = get_catalog(self.provider).get(self.operation)
        fields = getattr(self.args_schema, "model_fields", {})
        control = set(op.control) if op is not None else set(fields)
        control |= {arg for name, arg in ARGUMENT_ALIASES if name in control}
        return tuple(name for name in fields if name in control)

    def _call(self, kwargs: dict[str, Any], handler: ProvenanceHandler | None) -> str:
        request = self.build_request(**kwargs)
        headers = dict(request.headers)
        ledger = handler.ledger if handler is not None else None
        if ledger is not None:
            # What the run's ledger knows travels with the request, signed; the broker
            # adds what it served to this run itself.
            report = ledger.label(kwargs, self.control_names())
            headers[RUN_HEADER] = ledger.run_id
            headers[TAINT_HEADER] = report.to_header()
        try:
            response = self.client.request(
                request.method,
                self.upstream,
                request.path,
                params=request.params or None,
                json=request.json,
                data=request.data,
                headers=headers or None,
            )
        except BrokerRefused as exc:
            return refusal_text(exc)
        try:
            payload: Any = response.json()
        except ValueError:
            payload = response.text
        if handler is not None and 200 <= response.status_code < 300:
            op = get_catalog(self.provider).get(self.operation)
            marked = op.untrusted if op is not None else ("*", "[].*")
            for path, text in untrusted_texts(payload, handler.fields_of(self.name, marked)):
                handler.ledger.add_untrusted(text, Source("tool", self.name, path))
        return self.format_response(response.status_code, payload)

    def _run(
        self, *args: Any, run_manager: CallbackManagerForToolRun | None = None, **kwargs: Any
    ) -> str:
        return self._call(kwargs, handler_for(run_manager))

    async def _arun(
        self,
        *args: Any,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> str:
        return await asyncio.to_thread(self._call, kwargs, handler_for(run_manager))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, upstream={self.upstream!r})"


class Toolkit(BaseModel):
    """A provider's tools, built from one client."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: BrokerClient = Field(exclude=True, repr=False)
    upstream: str
    tool_classes: ClassVar[tuple[type[VertexTool], ...]] = ()

    def get_tools(self) -> list[BaseTool]:
        """One tool per operation."""
        # Subclasses give name and description defaults; mypy sees only the base.
        return [
            cls(client=self.client, upstream=self.upstream)  # type: ignore[call-arg]
            for cls in self.tool_classes
        ]
