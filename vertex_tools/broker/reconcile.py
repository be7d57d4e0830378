"""Orphaned calls: an intent with no outcome, left by a broker that died mid-call.

A broker killed (SIGKILL, power loss) after forwarding and before its outcome
entry leaves an intent that nothing will ever close: the call may or may not
have reached the upstream, and its spend is still reserved. At start, a broker
looks through the recent audit log for intents of broker instances that are no
longer running, and records an outcome for each: status 0, reason
``orphaned``, spend ``held`` (the reservation keeps counting against the
ceiling: the upstream may have acted on the call).

Invariants: an intent of a broker that is still running (this host, pid alive)
is never touched; each orphan gets exactly one outcome, even when several
brokers start at once (the state store arbitrates).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from vertex_tools.audit import AuditRecord, EntryKind

__all__ = ["Orphan", "find_orphans", "instance_alive"]

HOST = socket.gethostname()


@dataclass(frozen=True, slots=True)
class Orphan:
    """An intent without an outcome, of a broker instance that is gone."""

    seq: int
    request_id: str
    broker: str
    data: dict[str, Any]


def instance_alive(start: dict[str, Any] | None) -> bool:
    """Whether the broker that wrote ``start`` (its broker_start entry) still runs here."""
    if start is None:
        return False  # its start is older than the window: long gone
    if start.get("host") != HOST:
        return True  # another host's broker: not ours to judge
    pid = start.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_orphans(
    records: Iterable[AuditRecord],
    *,
    current: str,
    alive: Callable[[dict[str, Any] | None], bool] = instance_alive,
) -> list[Orphan]:
    """Intents with no outcome whose broker instance is neither ``current`` nor alive."""
    starts: dict[str, dict[str, Any]] = {}
    open_intents: dict[str, AuditRecord] = {}
    for record in records:
        data = record.data
        if record.kind is EntryKind.ADMIN and data.get("action") == "broker_start":
            starts[str(data.get("broker"))] = dict(data)
        elif record.kind is EntryKind.INTENT and isinstance(data.get("request_id"), str):
            open_intents[data["request_id"]] = record
        elif record.kind is EntryKind.OUTCOME:
            open_intents.pop(str(data.get("request_id")), None)
    orphans = []
    for request_id, record in open_intents.items():
        broker = record.data.get("broker")
        if not isinstance(broker, str) or broker == current:
            continue
        if alive(starts.get(broker)):
            continue
        orphans.append(Orphan(record.seq, request_id, broker, dict(record.data)))
    return orphans
