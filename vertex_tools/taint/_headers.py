"""Taint for calls a tool makes itself, through an official SDK.

A tool built on ``stripe``, ``githubkit`` or ``supabase`` (pointed at the broker
with a scoped token) makes its own HTTP calls: the run's taint report reaches
the broker only if the call carries it. :func:`taint_headers` gives the two
headers to add to that SDK call::

    class RefundTool(BaseTool):
        def _run(self, charge: str, run_manager=None) -> str:
            headers = taint_headers(run_manager, {"charge": charge}, control=["charge"])
            refund = sdk.v1.refunds.create({"charge": charge}, options={"headers": headers})

How each SDK takes extra headers: stripe ``options={"headers": ...}`` per call;
githubkit ``headers=`` per call; supabase / postgrest ``ClientOptions(headers=...)``
per client; PyGithub an ``Auth.Token`` subclass whose ``authentication(headers)``
adds them. Without a :class:`ProvenanceHandler` in the run there is no report and
this returns ``{}``; the broker still checks the call against what it served.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from vertex_tools.taint._callback import handler_for

__all__ = ["RUN_HEADER", "TAINT_HEADER", "taint_headers"]

RUN_HEADER = "X-Vertex-Run"
TAINT_HEADER = "X-Vertex-Taint"


def taint_headers(
    run_manager: Any, arguments: Mapping[str, Any], control: Iterable[str]
) -> dict[str, str]:
    """``X-Vertex-Run`` and ``X-Vertex-Taint`` for one call made with ``arguments``, whose
    ``control`` arguments steer it; ``{}`` when the run keeps no ledger."""
    handler = handler_for(run_manager)
    if handler is None:
        return {}
    report = handler.ledger.label(arguments, control)
    return {RUN_HEADER: handler.ledger.run_id, TAINT_HEADER: report.to_header()}
