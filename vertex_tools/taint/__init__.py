"""Taint tracking: which tool arguments came from untrusted content.

The matching core (:class:`ProvenanceLedger`, :class:`TaintReport`,
:class:`TaintMemory`) is plain Python, used by the broker too. The LangChain
parts (:class:`ProvenanceHandler`, :func:`guard`) are imported on first use, so
the broker never imports LangChain.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vertex_tools.taint._stub_core import (
    Hit,
    MatchKind,
    ProvenanceLedger,
    Source,
    Taint,
    TaintMemory,
    TaintReport,
)

if TYPE_CHECKING:
    from vertex_tools.taint._callback import ProvenanceHandler, ledger_for
    from vertex_tools.taint._guard import GuardedTool, HeldCall, guard

__all__ = [
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
    "guard",
    "ledger_for",
]

_LAZY = {
    "ProvenanceHandler": "vertex_tools.taint._callback",
    "ledger_for": "vertex_tools.taint._callback",
    "GuardedTool": "vertex_tools.taint._guard",
    "HeldCall": "vertex_tools.taint._guard",
    "guard": "vertex_tools.taint._guard",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vertex_tools.taint' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
