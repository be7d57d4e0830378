"""Taint tracking: which tool arguments came from untrusted content.

The pure matching core, free of LangChain and of the broker, so that both the
agent process and the broker import it: :class:`TextIndex` (matching, see
``_match``), :class:`ProvenanceLedger` (one agent run's trusted and untrusted
text) and :class:`TaintMemory` (what the broker itself served to each run).
The LangChain parts (:class:`ProvenanceHandler`, :func:`guard`) are imported on
first use, so the broker never imports LangChain.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vertex_tools.taint._ledger import ProvenanceLedger, Source, Taint, TaintReport
from vertex_tools.taint._match import Hit, MatchKind, TextIndex, Value, normalise
from vertex_tools.taint._memory import TaintMemory

if TYPE_CHECKING:
    from vertex_tools.taint._callback import ProvenanceHandler, handler_for, ledger_for
    from vertex_tools.taint._guard import Answer, BrokerApprovals, GuardedTool, HeldCall, guard
    from vertex_tools.taint._headers import taint_headers

__all__ = [
    "Answer",
    "BrokerApprovals",
    "GuardedTool",
    "HeldCall",
    "Hit",
    "MatchKind",
    "ProvenanceHandler",
    "ProvenanceLedger",
    "Source",
    "Taint",
    "TaintMemory",
    "TaintReport",
    "TextIndex",
    "Value",
    "guard",
    "handler_for",
    "ledger_for",
    "normalise",
    "taint_headers",
]

_LAZY = {
    "ProvenanceHandler": "vertex_tools.taint._callback",
    "handler_for": "vertex_tools.taint._callback",
    "ledger_for": "vertex_tools.taint._callback",
    "Answer": "vertex_tools.taint._guard",
    "BrokerApprovals": "vertex_tools.taint._guard",
    "GuardedTool": "vertex_tools.taint._guard",
    "HeldCall": "vertex_tools.taint._guard",
    "guard": "vertex_tools.taint._guard",
    "taint_headers": "vertex_tools.taint._headers",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vertex_tools.taint' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
