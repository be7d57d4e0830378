"""vertex_tools: brokered egress for AI agents.

The agent holds a scoped, revocable token; the broker holds the provider
secret, checks policy, injects the secret server-side and records every
decision in a hash-chained audit log.

Everything but the decision and error types is imported on first use, so that
importing this package (as the broker process does) never imports LangChain, httpx
or the stores: ``from vertex_tools import BrokerClient`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vertex_tools.decision import Decision, Effect, Reason
from vertex_tools.errors import (
    BrokerError,
    BrokerRefused,
    BrokerUnavailable,
    PolicyError,
    VertexError,
)

if TYPE_CHECKING:
    from vertex_tools.client import AsyncBrokerClient, BrokerClient
    from vertex_tools.local import LocalBroker, local_broker
    from vertex_tools.providers.github.toolkit import GitHubToolkit
    from vertex_tools.providers.stripe.toolkit import StripeToolkit
    from vertex_tools.providers.supabase.toolkit import SupabaseToolkit
    from vertex_tools.taint import ProvenanceHandler, ProvenanceLedger, Source, guard

__all__ = [
    "AsyncBrokerClient",
    "BrokerClient",
    "BrokerError",
    "BrokerRefused",
    "BrokerUnavailable",
    "Decision",
    "Effect",
    "GitHubToolkit",
    "LocalBroker",
    "PolicyError",
    "ProvenanceHandler",
    "ProvenanceLedger",
    "Reason",
    "Source",
    "StripeToolkit",
    "SupabaseToolkit",
    "VertexError",
    "guard",
    "local_broker",
]
__version__ = "0.1.0"

# Imported on first use. The broker process imports this package (every module of it
# is a submodule) but needs none of these: the client brings httpx, the local broker
# the stores, the toolkits LangChain.
_LAZY = {
    "AsyncBrokerClient": "vertex_tools.client",
    "BrokerClient": "vertex_tools.client",
    "LocalBroker": "vertex_tools.local",
    "local_broker": "vertex_tools.local",
    "ProvenanceLedger": "vertex_tools.taint",
    "Source": "vertex_tools.taint",
    "StripeToolkit": "vertex_tools.providers.stripe.toolkit",
    "GitHubToolkit": "vertex_tools.providers.github.toolkit",
    "SupabaseToolkit": "vertex_tools.providers.supabase.toolkit",
    "ProvenanceHandler": "vertex_tools.taint._callback",
    "guard": "vertex_tools.taint._guard",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vertex_tools' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
