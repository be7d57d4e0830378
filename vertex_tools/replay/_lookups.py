"""What the broker learnt by its own amount look-ups, read from its audit log.

A refund without an amount makes the broker read the charge itself; the agent
never sees that answer, so the recorder cannot. An operator recording with
access to the data directory can add it from the audit log: the look-up's
path, and the amount and currency the broker counted (never the charge's
other fields). Replay answers the look-up with exactly that.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from vertex_tools.audit import EntryKind
from vertex_tools.home import Home
from vertex_tools.store.location import SqliteLocation

__all__ = ["audit_lookups"]


def audit_lookups(home: Home) -> Callable[[str], list[dict[str, Any]]]:
    """A ``lookups`` callable for :class:`Recorder`, reading ``home``'s audit log."""
    location = SqliteLocation(home)
    seen = 1
    paths: dict[str, str] = {}
    amounts: dict[str, tuple[int, str]] = {}

    def lookups(request_id: str) -> list[dict[str, Any]]:
        nonlocal seen
        with location.open_audit(read_only=True) as log:
            for record in log.records(seen):
                seen = record.seq + 1
                if record.kind is not EntryKind.INTENT:
                    continue
                data = record.data
                if data.get("purpose") == "amount_lookup" and isinstance(data.get("path"), str):
                    paths[str(data.get("for"))] = str(data["path"])
                elif isinstance(data.get("amount"), int) and isinstance(data.get("currency"), str):
                    amounts[str(data.get("request_id"))] = (data["amount"], data["currency"])
        path, amount = paths.get(request_id), amounts.get(request_id)
        if path is None or amount is None:
            return []
        body = {"amount": amount[0], "currency": amount[1]}
        return [{"path": path, "body": json.dumps(body)}]

    return lookups
