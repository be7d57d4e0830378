"""vertex_tools: brokered egress for AI agents.

The agent holds a scoped, revocable token; the broker holds the provider
secret, checks policy, injects the secret server-side and records every
decision in a hash-chained audit log.
"""

from vertex_tools.client import AsyncBrokerClient, BrokerClient
from vertex_tools.decision import Decision, Effect, Reason
from vertex_tools.errors import (
    BrokerError,
    BrokerRefused,
    BrokerUnavailable,
    PolicyError,
    VertexError,
)
from vertex_tools.local import LocalBroker, local_broker

__all__ = [
    "AsyncBrokerClient",
    "BrokerClient",
    "BrokerError",
    "BrokerRefused",
    "BrokerUnavailable",
    "Decision",
    "Effect",
    "LocalBroker",
    "PolicyError",
    "Reason",
    "VertexError",
    "local_broker",
]
__version__ = "0.1.0"
