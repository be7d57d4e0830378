"""langchain_tests' standard suites for every Supabase tool.

Unit suites build each tool around a client that is never connected; the
integration suites call the live broker, stand-in and PostgreSQL of this
directory's conftest with the ``editor`` grant, so every example call is one the
policy allows and the database can answer.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import pytest
from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests

from vertex_tools.client import BrokerClient
from vertex_tools.providers.supabase.toolkit import (
    DeleteRowsTool,
    InsertRowsTool,
    RpcTool,
    SelectRowsTool,
    UpdateRowsTool,
)
from vertex_tools.providers.tool import VertexTool
from vertex_tools.tokens import mint_token

_OFFLINE = BrokerClient(
    "http://127.0.0.1:9", token=mint_token("unit", now=time.time(), ttl=3600).token
)


class _Supabase:
    """What both suites need: the tool class, its example call, the client."""

    tool_class: ClassVar[type[VertexTool]]
    example: ClassVar[dict[str, Any]]
    client: BrokerClient = _OFFLINE

    @property
    def tool_constructor(self) -> type[VertexTool]:
        return self.tool_class

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"client": self.client, "upstream": "supabase"}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return dict(self.example)


class _Live(_Supabase):
    @pytest.fixture(autouse=True)
    def _live_client(self, editor: BrokerClient) -> None:
        self.client = editor


_EXAMPLES: list[tuple[type[VertexTool], dict[str, Any]]] = [
    (
        SelectRowsTool,
        {
            "table": "orders",
            "columns": ["id", "status"],
            "filters": [{"column": "status", "op": "eq", "value": "open"}],
            "limit": 5,
        },
    ),
    (InsertRowsTool, {"table": "orders", "rows": [{"customer": "standard", "amount": 1}]}),
    (
        UpdateRowsTool,
        {
            "table": "orders",
            "filters": [{"column": "customer", "op": "eq", "value": "standard"}],
            "values": {"status": "shipped"},
        },
    ),
    (
        DeleteRowsTool,
        {"table": "orders", "filters": [{"column": "customer", "op": "eq", "value": "standard"}]},
    ),
    (RpcTool, {"function": "order_total", "args": {"p_customer": "acme"}}),
]

# One unit and one integration class per tool, named after it so failures say which.
for _tool, _example in _EXAMPLES:
    _name = _tool.__name__
    globals()[f"Test{_name}Unit"] = type(
        f"Test{_name}Unit",
        (_Supabase, ToolsUnitTests),
        {"tool_class": _tool, "example": _example},
    )
    globals()[f"Test{_name}Integration"] = type(
        f"Test{_name}Integration",
        (_Live, ToolsIntegrationTests),
        {"tool_class": _tool, "example": _example},
    )
del _tool, _example, _name
