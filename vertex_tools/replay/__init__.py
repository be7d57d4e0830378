"""Recorded agent sessions, replayed offline through the broker's real pipeline.

Record (agent side)::

    with Recorder("tests/sessions/refund.session.jsonl") as rec:
        client = BrokerClient(url, token=token, transport=rec.transport("support-agent"))
        agent.invoke(..., config={"callbacks": [ProvenanceHandler(), rec]})

Replay: ``vertex replay FILE... [--policy FILE]`` or :func:`replay_files`.
The format and what replay reproduces: docs/replay.md.
"""

from typing import TYPE_CHECKING, Any

from vertex_tools.replay._format import (
    FORMAT,
    VERSION,
    RecordedCall,
    RecordedDecision,
    Session,
    SessionFormatError,
    read_session,
)
from vertex_tools.replay._lookups import audit_lookups
from vertex_tools.replay._replay import (
    Difference,
    ReplayForwarder,
    ReplayResult,
    replay_files,
    replay_session,
)

if TYPE_CHECKING:
    from vertex_tools.replay._recorder import Recorder, RecordingTransport

__all__ = [
    "FORMAT",
    "VERSION",
    "Difference",
    "RecordedCall",
    "RecordedDecision",
    "Recorder",
    "RecordingTransport",
    "ReplayForwarder",
    "ReplayResult",
    "Session",
    "SessionFormatError",
    "audit_lookups",
    "read_session",
    "replay_files",
    "replay_session",
]


def __getattr__(name: str) -> Any:
    # The recorder is a LangChain callback: imported on first use, so that replaying
    # (``vertex replay``, the pytest plugin) never pays for importing LangChain.
    if name in ("Recorder", "RecordingTransport"):
        from vertex_tools.replay import _recorder

        return getattr(_recorder, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
