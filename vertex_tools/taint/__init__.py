"""Taint tracking: which tool arguments came from untrusted content.

The pure matching core, free of LangChain and of the broker, so that both the agent
process and the broker import it: :class:`TextIndex` (matching, see ``_match``),
:class:`ProvenanceLedger` (one agent run's trusted and untrusted text) and
:class:`TaintMemory` (what the broker itself served to each run).
"""

from __future__ import annotations

from vertex_tools.taint._ledger import ProvenanceLedger, Source, Taint, TaintReport
from vertex_tools.taint._match import Hit, MatchKind, TextIndex, Value, normalise
from vertex_tools.taint._memory import TaintMemory

__all__ = [
    "Hit",
    "MatchKind",
    "ProvenanceLedger",
    "Source",
    "Taint",
    "TaintMemory",
    "TaintReport",
    "TextIndex",
    "Value",
    "normalise",
]
