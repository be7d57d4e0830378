"""Filling a provenance ledger from a LangChain run, through its callbacks.

Add one :class:`ProvenanceHandler` to a run's callbacks (``config={"callbacks":
[handler]}``) and it records, as the run goes:

* trusted: the system prompt and the human's messages (``on_chat_model_start``),
  and the outputs of tools an operator declared trusted (the user's own data);
* untrusted: the outputs of every other tool (the default: anything a third
  party can write is untrusted), every retrieved document, and human messages the
  agent harness wrote (``lc_source``: a summary repeats tool outputs);
* neither: tools declared ``neutral``, and vertex_tools' own provider tools,
  which record just the fields third parties can write themselves.

Every string of an output is recorded: content blocks (``search_result``, ``json``),
lists of records, messages, LangGraph commands; a JSON text also decoded.

A tool's declaration comes from its ``metadata["vertex_output"]``
(``untrusted``, ``trusted``, ``neutral`` or ``self``), set by
:func:`vertex_tools.guard`; the handler's ``trusted_tools`` / ``untrusted_tools``
/ ``neutral_tools`` override it by tool name. ``trusted_sources`` names
retrieved documents' ``metadata["source"]`` prefixes that are the user's own (matched
on a boundary: the prefix, or the prefix followed by ``/``, ``?`` or ``#``);
``trusted_fields`` / ``untrusted_fields`` adjust, per provider tool, which
answer fields count as third-party content (``{"stripe_retrieve_customer":
["metadata"]}`` when the metadata is written by your own systems).

Errors in this handler are raised, not logged and skipped (``raise_error``):
a ledger that silently missed a tool's output would under-report taint. It
runs inline, so the ledger is up to date before the next step of the loop.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel

from vertex_tools.taint._ledger import ProvenanceLedger, Source
from vertex_tools.taint._match import _with_json_leaves

__all__ = ["INNER_TAG", "OutputTrust", "ProvenanceHandler", "handler_for", "ledger_for"]

OutputTrust = Literal["untrusted", "trusted", "neutral", "self"]
INNER_TAG = "vertex:inner"
"""Tag of a tool run made by a guard on behalf of the guarded tool: its output is
recorded once, under the guard's declaration."""
_TRUSTS: frozenset[str] = frozenset({"untrusted", "trusted", "neutral", "self"})


_MAX_ITEMS = 100_000  # items walked in one output; past it the rest is its repr


def _text(value: Any) -> str:
    """Every string of a message content, a tool output or anything else, one a line:
    content blocks (``text``, ``search_result`` with its ``source``, ``title`` and
    nested ``content``, ``json``...), lists of records (keys and values), messages
    (their content), LangGraph ``Command`` updates, models and dataclasses. Numbers
    are written as text; a string that is a JSON document with escapes gets its
    decoded strings after it. Iterative: deep nesting costs no stack."""
    parts: list[str] = []
    stack: list[Any] = [value]
    walked = 0
    while stack:
        item = stack.pop()
        walked += 1
        if walked > _MAX_ITEMS:  # a self-referencing list: the rest as text, once
            parts.append(_repr(stack))
            break
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            parts.append(_with_json_leaves(item))
        elif isinstance(item, int | float | Decimal):
            parts.append(str(item))
        elif isinstance(item, bytes | bytearray):
            parts.append(bytes(item).decode("utf-8", "replace"))
        elif isinstance(item, BaseMessage):
            stack.append(item.content)
        elif isinstance(item, Document):
            stack.append(item.metadata)
            stack.append(item.page_content)
        elif isinstance(item, Mapping):
            for key, sub in reversed(list(item.items())):
                stack.append(sub)
                stack.append(key)
        elif isinstance(item, list | tuple):
            stack.extend(reversed(item))
        elif isinstance(item, set | frozenset):
            stack.extend(item)
        elif isinstance(item, BaseModel):
            stack.append(item.model_dump())
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.append({f.name: getattr(item, f.name, None) for f in dataclasses.fields(item)})
        elif _is_command(item):
            # LangGraph's Command: what reaches the model is in its update (messages,
            # state) and its resume value.
            stack.append(getattr(item, "resume", None))
            stack.append(getattr(item, "update", None))
        else:
            parts.append(_repr(item))
    return "\n".join(parts)


def _is_command(item: Any) -> bool:
    return type(item).__name__ == "Command" and hasattr(item, "update")


def _repr(item: Any) -> str:
    try:
        return str(item)
    except (TypeError, ValueError, AttributeError, RecursionError):  # a broken __str__
        return object.__repr__(item)


def _source_trusted(origin: str, prefixes: Iterable[str]) -> bool:
    """Whether a document's ``source`` is under one of the trusted ``prefixes``, on a
    boundary: the prefix itself, or followed by "/", "?" or "#" (or the prefix ends in
    one of them), so ``https://wiki.corp.example`` does not trust
    ``https://wiki.corp.example.attacker.net`` nor ``https://wiki.corp.example@evil``."""
    for prefix in prefixes:
        if not prefix or not origin.startswith(prefix):
            continue
        if len(origin) == len(prefix) or prefix[-1] in "/?#" or origin[len(prefix)] in "/?#":
            return True
    return False


def _harness_made(message: BaseMessage) -> str | None:
    """The feature that wrote a human message the user did not type (LangChain marks
    them with ``additional_kwargs["lc_source"]``: ``SummarizationMiddleware`` puts its
    summary of the conversation, tool outputs included, in a HumanMessage marked
    ``summarization``); None for a message without the mark."""
    kwargs = getattr(message, "additional_kwargs", None) or {}
    source = kwargs.get("lc_source") if isinstance(kwargs, Mapping) else None
    if source is None:
        return None
    return str(source)[:64] or "harness"


class ProvenanceHandler(BaseCallbackHandler):
    """Records what entered an agent run, and whether it can be trusted."""

    raise_error: bool = True
    run_inline: bool = True

    def __init__(
        self,
        ledger: ProvenanceLedger | None = None,
        *,
        trusted_tools: Iterable[str] = (),
        untrusted_tools: Iterable[str] = (),
        neutral_tools: Iterable[str] = (),
        trusted_sources: Iterable[str] = (),
        trusted_fields: Mapping[str, Iterable[str]] | None = None,
        untrusted_fields: Mapping[str, Iterable[str]] | None = None,
        trust_system_prompt: bool = True,
    ) -> None:
        self.ledger = ledger if ledger is not None else ProvenanceLedger()
        self._override: dict[str, OutputTrust] = {}
        for names, trust in (
            (trusted_tools, "trusted"),
            (untrusted_tools, "untrusted"),
            (neutral_tools, "neutral"),
        ):
            for name in names:
                if name in self._override:
                    raise ValueError(f"tool {name!r} is declared twice")
                self._override[name] = trust  # type: ignore[assignment]
        self._trust_system = trust_system_prompt
        self._trusted_sources = tuple(trusted_sources)
        self._trusted_fields = {k: frozenset(v) for k, v in (trusted_fields or {}).items()}
        self._untrusted_fields = {k: tuple(v) for k, v in (untrusted_fields or {}).items()}
        self._tools: dict[UUID, tuple[str, OutputTrust]] = {}
        self._seen: set[int] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ProvenanceHandler(run_id={self.ledger.run_id!r})"

    def fields_of(self, tool: str, marked: Iterable[str]) -> tuple[str, ...]:
        """The answer fields of one of our provider tools to record as untrusted: those
        its catalog marks, minus the ones declared trusted, plus any declared untrusted."""
        trusted = self._trusted_fields.get(tool, frozenset())
        kept = [f for f in marked if f not in trusted]
        return (*kept, *self._untrusted_fields.get(tool, ()))

    # messages: the system prompt and the human are trusted

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Record the system prompt and the human's messages as trusted. A human
        message the agent harness wrote (a summary of the conversation, marked
        ``lc_source``) repeats tool outputs: it is recorded as untrusted. A model call
        a middleware makes for itself (``metadata["lc_source"]``, the summariser's
        prompt holding the whole conversation) records nothing as trusted."""
        internal = bool(metadata) and "lc_source" in (metadata or {})
        for batch in messages:
            for message in batch:
                trusted = True
                if isinstance(message, HumanMessage):
                    made_by = _harness_made(message)
                    if made_by is not None:
                        source, trusted = Source("system", made_by, "message"), False
                    elif internal:
                        continue
                    else:
                        source = Source("user", "message")
                elif isinstance(message, SystemMessage) and self._trust_system:
                    if internal:
                        continue
                    source = Source("system", "prompt")
                else:
                    continue
                text = _text(message)
                if not text:
                    continue
                key = hash((source.kind, trusted, text))
                with self._lock:
                    if key in self._seen:
                        continue
                    self._seen.add(key)
                if trusted:
                    self.ledger.add_trusted(text, source)
                else:
                    self.ledger.add_untrusted(text, source)

    # tools: by declaration, untrusted unless declared otherwise

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Note which tool this run is, and how far its output is trusted."""
        name = str((serialized or {}).get("name") or kwargs.get("name") or "tool")
        if tags and INNER_TAG in tags:
            trust: OutputTrust = "self"
        elif name in self._override:
            trust = self._override[name]
        else:
            declared = (metadata or {}).get("vertex_output", "untrusted")
            trust = declared if declared in _TRUSTS else "untrusted"
        with self._lock:
            self._tools[run_id] = (name, trust)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Record the tool's output under its declaration."""
        with self._lock:
            name, trust = self._tools.pop(run_id, ("tool", "untrusted"))
        self._record(name, trust, _text(output))

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """A failing tool's message may carry its input back: recorded like its output."""
        with self._lock:
            name, trust = self._tools.pop(run_id, ("tool", "untrusted"))
        self._record(name, trust, str(error))

    def _record(self, name: str, trust: OutputTrust, text: str) -> None:
        if not text or trust in ("self", "neutral"):
            return
        if trust == "trusted":
            self.ledger.add_trusted(text, Source("tool", name))
        else:
            self.ledger.add_untrusted(text, Source("tool", name))

    # retrieval: documents are third-party content

    def on_retriever_end(
        self, documents: Sequence[Document], *, run_id: UUID, **kwargs: Any
    ) -> None:
        """Record every retrieved document as untrusted, naming its source."""
        for document in documents:
            origin = str(document.metadata.get("source", "")) if document.metadata else ""
            source = Source("retriever", "document", origin[:200])
            if origin and _source_trusted(origin, self._trusted_sources):
                self.ledger.add_trusted(document.page_content, source)
            else:
                self.ledger.add_untrusted(document.page_content, source)


def handler_for(run_manager: Any) -> ProvenanceHandler | None:
    """The :class:`ProvenanceHandler` among a tool run's callbacks, if any."""
    if run_manager is None:
        return None
    for attr in ("handlers", "inheritable_handlers"):
        for handler in getattr(run_manager, attr, None) or ():
            if isinstance(handler, ProvenanceHandler):
                return handler
    return None


def ledger_for(run_manager: Any) -> ProvenanceLedger | None:
    """The run's ledger, found among a tool run's callbacks (``run_manager`` is what a
    tool's ``_run`` receives); None when the run has no :class:`ProvenanceHandler`."""
    handler = handler_for(run_manager)
    return handler.ledger if handler is not None else None
