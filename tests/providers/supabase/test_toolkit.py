"""The Supabase tools without a broker: the requests they build, the arguments they
refuse, and that the token stays out of everything a tool shows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from vertex_tools.client import BrokerClient
from vertex_tools.policy.facts import RequestFacts
from vertex_tools.providers.catalog import CheckContext, Rewrite
from vertex_tools.providers.supabase.catalog import CATALOG, check
from vertex_tools.providers.supabase.toolkit import (
    DeleteRowsTool,
    InsertRowsTool,
    RpcTool,
    SelectRowsTool,
    SupabaseToolkit,
    UpdateRowsTool,
)
from vertex_tools.providers.tool import ToolRequest, VertexTool
from vertex_tools.tokens import mint_token

TOKEN = mint_token("unit", now=time.time(), ttl=3600).token


@pytest.fixture(scope="module")
def client() -> Iterator[BrokerClient]:
    # Never connected: these tests only build requests.
    with BrokerClient("http://127.0.0.1:9", token=TOKEN) as offline:
        yield offline


def wire_query(request: ToolRequest) -> str:
    """The query string exactly as the client will send it."""
    url = httpx.Request("GET", "http://x/", params=request.params or None).url
    return url.query.decode("ascii")


@pytest.mark.parametrize(
    ("tool", "args", "method", "path", "query"),
    [
        (SelectRowsTool, {"table": "orders"}, "GET", "/rest/v1/orders", "select=%2A"),
        (
            SelectRowsTool,
            {
                "table": "orders",
                "columns": ["id", "customer"],
                "filters": [
                    {"column": "status", "op": "eq", "value": "open"},
                    {"column": "amount", "op": "gte", "value": 100},
                    {"column": "note", "op": "is", "value": None},
                    {"column": "paid", "op": "is", "value": False},
                    {"column": "id", "op": "in", "value": [1, 2]},
                ],
                "order": [{"column": "amount", "descending": True}, {"column": "id"}],
                "limit": 10,
                "offset": 20,
            },
            "GET",
            "/rest/v1/orders",
            "select=id%2Ccustomer&status=eq.open&amount=gte.100&note=is.null&paid=is.false"
            "&id=in.%281%2C2%29&order=amount.desc%2Cid.asc&limit=10&offset=20",
        ),
        (
            SelectRowsTool,
            {
                "table": "orders",
                "filters": [
                    {"column": "customer", "op": "in", "value": ["a,b", 'say "hi"', "x\\y"]}
                ],
            },
            "GET",
            "/rest/v1/orders",
            "select=%2A&customer=in.%28%22a%2Cb%22%2C%22say+%5C%22hi%5C%22%22%2C%22x%5C%5Cy%22%29",
        ),
        (
            SelectRowsTool,
            {"table": "orders", "filters": [{"column": "note", "op": "eq", "value": "a&b=c;d"}]},
            "GET",
            "/rest/v1/orders",
            "select=%2A&note=eq.a%26b%3Dc%3Bd",
        ),
        (
            UpdateRowsTool,
            {
                "table": "orders",
                "filters": [{"column": "id", "op": "eq", "value": 3}],
                "values": {"status": "shipped"},
            },
            "PATCH",
            "/rest/v1/orders",
            "id=eq.3",
        ),
        (
            DeleteRowsTool,
            {
                "table": "orders",
                "filters": [{"column": "status", "op": "eq", "value": "cancelled"}],
            },
            "DELETE",
            "/rest/v1/orders",
            "status=eq.cancelled",
        ),
        (
            InsertRowsTool,
            {"table": "orders", "rows": [{"customer": "a", "amount": 1}]},
            "POST",
            "/rest/v1/orders",
            "",
        ),
        (
            RpcTool,
            {"function": "order_total", "args": {"p_customer": "acme"}},
            "POST",
            "/rest/v1/rpc/order_total",
            "",
        ),
    ],
)
def test_requests_the_tools_build_and_the_broker_accepts(
    client: BrokerClient,
    tool: type[VertexTool],
    args: dict[str, Any],
    method: str,
    path: str,
    query: str,
) -> None:
    request = tool(client=client).build_request(**args)  # type: ignore[call-arg]
    assert (request.method, request.path, wire_query(request)) == (method, path, query)
    # Whatever a tool builds, the catalog must accept it as the same operation.
    match = CATALOG.match(method, path[1:].split("/"))
    assert match is not None and match[0].name == tool.operation
    facts = RequestFacts("supabase", method, path, query, "application/json", b"")
    outcome = check(CheckContext(match[0], match[1], facts, (), "g"))
    assert outcome is None or isinstance(outcome, Rewrite)


def test_writes_ask_for_the_rows_back(client: BrokerClient) -> None:
    filters = [{"column": "id", "op": "eq", "value": 1}]
    for request in (
        InsertRowsTool(client=client).build_request(table="t", rows=[{"a": 1}]),
        UpdateRowsTool(client=client).build_request(table="t", filters=filters, values={"a": 2}),
        DeleteRowsTool(client=client).build_request(table="t", filters=filters),
    ):
        assert request.headers == {"Prefer": "return=representation"}
    insert = InsertRowsTool(client=client).build_request(table="t", rows=[{"a": 1}, {"a": 2}])
    assert insert.json == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize(
    ("tool", "args", "needle"),
    [
        (UpdateRowsTool, {"table": "orders", "filters": [], "values": {"a": 1}}, "at least 1"),
        (UpdateRowsTool, {"table": "orders", "values": {"a": 1}}, "filters"),
        (DeleteRowsTool, {"table": "orders", "filters": []}, "at least 1"),
        (DeleteRowsTool, {"table": "orders"}, "filters"),
        (SelectRowsTool, {"table": "Orders"}, "pattern"),
        (SelectRowsTool, {"table": "orders;drop"}, "pattern"),
        (SelectRowsTool, {"table": "orders", "columns": ["id", "x)"]}, "column name"),
        (
            SelectRowsTool,
            {"table": "t", "filters": [{"column": "a", "op": "in", "value": 1}]},
            "list",
        ),
        (
            SelectRowsTool,
            {"table": "t", "filters": [{"column": "a", "op": "in", "value": []}]},
            "list",
        ),
        (
            SelectRowsTool,
            {"table": "t", "filters": [{"column": "a", "op": "eq", "value": None}]},
            "'is'",
        ),
        (
            SelectRowsTool,
            {"table": "t", "filters": [{"column": "a", "op": "is", "value": "x"}]},
            "'is'",
        ),
        (
            SelectRowsTool,
            {"table": "t", "filters": [{"column": "a", "op": "not", "value": 1}]},
            "op",
        ),
        (
            SelectRowsTool,
            {"table": "t", "filters": [{"column": "limit", "op": "eq", "value": 1}]},
            "keyword",
        ),
        (
            SelectRowsTool,
            {
                "table": "t",
                "filters": [
                    {"column": "a", "op": "gt", "value": 1},
                    {"column": "a", "op": "lt", "value": 9},
                ],
            },
            "one filter per column",
        ),
        (SelectRowsTool, {"table": "t", "limit": 0}, "greater than or equal"),
        (InsertRowsTool, {"table": "t", "rows": []}, "at least 1"),
        (InsertRowsTool, {"table": "t", "rows": [{"a": 1}, {"b": 2}]}, "other columns"),
        (InsertRowsTool, {"table": "t", "rows": [{"A b": 1}]}, "column"),
        (
            UpdateRowsTool,
            {"table": "t", "filters": [{"column": "id", "op": "eq", "value": 1}], "values": {}},
            "at least 1",
        ),
        (RpcTool, {"function": "pg_sleep;", "args": {}}, "pattern"),
        (RpcTool, {"function": "f", "args": {"bad name": 1}}, "argument name"),
    ],
)
def test_arguments_the_tools_refuse(
    client: BrokerClient, tool: type[VertexTool], args: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ValidationError, match=needle):
        tool(client=client).invoke(args)  # type: ignore[call-arg]


def test_the_token_is_in_nothing_a_tool_shows(client: BrokerClient) -> None:
    secret_part = TOKEN.rsplit(".", 1)[1]
    for tool in SupabaseToolkit(client=client).get_tools():
        shown = [
            repr(tool),
            str(tool),
            json.dumps(tool.model_dump(), default=repr),
            # args_schema is a class, which pydantic cannot put in JSON by itself.
            tool.model_dump_json(fallback=repr),
            json.dumps(tool.args),
            json.dumps(tool.tool_call_schema.model_json_schema()),  # type: ignore[union-attr]
        ]
        for text in shown:
            assert TOKEN not in text and secret_part not in text
        assert "client" not in tool.model_dump()


def test_toolkit_gives_one_tool_per_operation(client: BrokerClient) -> None:
    toolkit = SupabaseToolkit(client=client)
    tools = toolkit.get_tools()
    assert [t.name for t in tools] == [
        "supabase_select_rows",
        "supabase_insert_rows",
        "supabase_update_rows",
        "supabase_delete_rows",
        "supabase_call_function",
    ]
    assert {t.operation for t in tools if isinstance(t, VertexTool)} == set(CATALOG.names)
    assert {t.upstream for t in tools if isinstance(t, VertexTool)} == {"supabase"}
    assert SupabaseToolkit(client=client, upstream="db").get_tools()[0].upstream == "db"  # type: ignore[attr-defined]
    assert "client" not in repr(toolkit) and TOKEN not in repr(toolkit)
