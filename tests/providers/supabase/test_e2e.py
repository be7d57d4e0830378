"""End to end: LangChain tool -> real broker process -> PostgREST stand-in -> real PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import httpx
import psycopg
import pytest

from tests.providers.supabase.conftest import SUPABASE_KEY, SupabaseDeployment
from tests.providers.supabase.postgrest import PostgrestStandIn, Received
from vertex_tools.audit import AuditLog, EntryKind
from vertex_tools.client import BrokerClient
from vertex_tools.errors import BrokerRefused
from vertex_tools.providers.supabase.toolkit import (
    DeleteRowsTool,
    InsertRowsTool,
    RpcTool,
    SelectRowsTool,
    SupabaseToolkit,
    UpdateRowsTool,
)

DB = psycopg.Connection[Any]


def last(standin: PostgrestStandIn, count: int) -> list[Received]:
    return standin.received[-count:] if count else []


def rows(db: DB, customer: str | None = None) -> list[tuple[Any, ...]]:
    """(id, customer, amount, status) of the orders, all or one customer's."""
    return db.execute(
        "SELECT id, customer, amount, status FROM orders "
        "WHERE %(c)s::text IS NULL OR customer = %(c)s ORDER BY id",
        {"c": customer},
    ).fetchall()


def test_allowed_select_arrives_with_the_key_in_both_headers(
    db: DB, standin: PostgrestStandIn, reporting: BrokerClient
) -> None:
    before = len(standin.received)
    out = SelectRowsTool(client=reporting).invoke(
        {
            "table": "orders",
            "columns": ["id", "customer", "amount"],
            "filters": [{"column": "status", "op": "eq", "value": "open"}],
            "order": [{"column": "amount", "descending": True}],
            "limit": 10,
        }
    )
    assert json.loads(out) == [
        {"id": 3, "customer": "globex", "amount": 5000},
        {"id": 1, "customer": "acme", "amount": 1200},
    ]
    (got,) = standin.received[before:]
    assert got.method == "GET" and got.path == "/rest/v1/orders"
    assert got.headers["apikey"] == SUPABASE_KEY
    assert got.headers["authorization"] == f"Bearer {SUPABASE_KEY}"
    # The agent's own credential (the signed vertex token) never reaches Supabase.
    assert "vertex" not in json.dumps(got.headers).lower()


def test_operation_outside_the_grant_is_refused(
    db: DB, standin: PostgrestStandIn, reporting: BrokerClient
) -> None:
    before = len(standin.received)
    out = DeleteRowsTool(client=reporting).invoke(
        {"table": "orders", "filters": [{"column": "id", "op": "eq", "value": 1}]}
    )
    assert out.startswith("REFUSED by policy (not_allowed")
    assert "rows.delete" in out
    assert standin.received[before:] == []
    assert len(rows(db)) == 4


def test_another_table_is_refused(
    db: DB, standin: PostgrestStandIn, reporting: BrokerClient, editor: BrokerClient
) -> None:
    before = len(standin.received)
    out = SelectRowsTool(client=reporting).invoke({"table": "customers"})
    assert out.startswith("REFUSED by policy (resource_not_allowed")
    assert "'customers'" in out
    # A function not listed as rpc:<name> is refused the same way.
    out = RpcTool(client=editor).invoke({"function": "purge_orders"})
    assert out.startswith("REFUSED by policy (resource_not_allowed")
    assert standin.received[before:] == []
    assert len(rows(db)) == 4


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
def test_update_and_delete_without_a_filter_are_refused(
    db: DB, standin: PostgrestStandIn, editor: BrokerClient, method: str
) -> None:
    # The tools cannot even express this (filters are required); an SDK-style caller
    # holding the same token can, and the broker stops it.
    before = len(standin.received)
    with pytest.raises(BrokerRefused) as info:
        editor.request(
            method,
            "supabase",
            "/rest/v1/orders",
            params={"select": "id"},
            json={"status": "void"} if method == "PATCH" else None,
        )
    assert info.value.decision.reason.value == "missing_filter"
    assert standin.received[before:] == []
    assert [r[3] for r in rows(db)] == ["open", "shipped", "open", "cancelled"]


def test_update_without_filters_is_refused_by_the_tool_too(editor: BrokerClient) -> None:
    with pytest.raises(ValueError, match="filters"):
        UpdateRowsTool(client=editor).invoke({"table": "orders", "values": {"status": "x"}})


def test_select_is_capped_at_the_broker(
    supabase: SupabaseDeployment, db: DB, standin: PostgrestStandIn, editor: BrokerClient
) -> None:
    before = len(standin.received)
    out = SelectRowsTool(client=editor).invoke(
        {"table": "events", "columns": ["id"], "limit": 5000}
    )
    assert len(json.loads(out)) == 1000  # the table has 1500 rows
    out = SelectRowsTool(client=editor).invoke({"table": "events", "columns": ["id"]})
    assert len(json.loads(out)) == 1000
    first, second = standin.received[before:]
    assert first.query == "select=id&limit=1000"
    assert second.query == "select=id&limit=1000"
    # The rewrite is on the audit record of the request.
    with AuditLog(supabase.home.audit_db) as log:
        intents = [r.data for r in log.records() if r.kind is EntryKind.INTENT]
    assert intents[-1]["forwarded_query"] == "select=id&limit=1000"
    assert intents[-2]["query"] == "select=id&limit=5000"


def test_writes_through_every_tool(db: DB, supabase: SupabaseDeployment) -> None:
    # A token of its own: the session's editor token has read rows naming "hooli", and
    # the broker holds values it served to a token (outside any run) against its writes.
    editor = supabase.client("editor")
    inserted = json.loads(
        InsertRowsTool(client=editor).invoke(
            {
                "table": "orders",
                "rows": [
                    {"customer": "hooli", "amount": 70},
                    {"customer": "hooli", "amount": 30},
                ],
            }
        )
    )
    assert [(r["id"], r["status"]) for r in inserted] == [(5, "open"), (6, "open")]
    updated = json.loads(
        UpdateRowsTool(client=editor).invoke(
            {
                "table": "orders",
                "filters": [{"column": "id", "op": "in", "value": [5, 6]}],
                "values": {"status": "shipped"},
            }
        )
    )
    assert sorted(r["id"] for r in updated) == [5, 6]
    assert rows(db, "hooli") == [
        (5, "hooli", 70, "shipped"),
        (6, "hooli", 30, "shipped"),
    ]
    total = RpcTool(client=editor).invoke(
        {"function": "order_total", "args": {"p_customer": "hooli"}}
    )
    assert json.loads(total) == 100
    by_status = json.loads(
        RpcTool(client=editor).invoke(
            {"function": "orders_by_status", "args": {"p_status": "cancelled"}}
        )
    )
    assert [r["customer"] for r in by_status] == ["initech"]
    deleted = json.loads(
        DeleteRowsTool(client=editor).invoke(
            {"table": "orders", "filters": [{"column": "customer", "op": "eq", "value": "hooli"}]}
        )
    )
    assert len(deleted) == 2
    assert rows(db, "hooli") == []


def test_filter_values_survive_the_trip(db: DB, editor: BrokerClient) -> None:
    # Commas, quotes and backslashes inside an in-list; '&', '=' and ';' inside eq.
    db.execute(
        "INSERT INTO orders (customer, amount, note) VALUES "
        "('a,b', 1, 'x&y=z;w'), ('say \"hi\"', 2, NULL), ('back\\slash', 3, NULL)"
    )
    tool = SelectRowsTool(client=editor)
    out = tool.invoke(
        {
            "table": "orders",
            "columns": ["customer"],
            "filters": [
                {"column": "customer", "op": "in", "value": ["a,b", 'say "hi"', "back\\slash"]}
            ],
            "order": [{"column": "id"}],
        }
    )
    assert [r["customer"] for r in json.loads(out)] == ["a,b", 'say "hi"', "back\\slash"]
    out = tool.invoke(
        {
            "table": "orders",
            "columns": ["amount"],
            "filters": [{"column": "note", "op": "eq", "value": "x&y=z;w"}],
        }
    )
    assert json.loads(out) == [{"amount": 1}]
    out = tool.invoke(
        {
            "table": "orders",
            "columns": ["id"],
            "filters": [
                {"column": "note", "op": "like", "value": "*care*"},
                {"column": "amount", "op": "lt", "value": 1000},
            ],
        }
    )
    assert json.loads(out) == [{"id": 2}]


def test_database_errors_reach_the_model_as_text(db: DB, editor: BrokerClient) -> None:
    out = InsertRowsTool(client=editor).invoke(
        {"table": "orders", "rows": [{"customer": "x", "amount": -1}]}
    )
    assert out.startswith("The API answered 400:")
    assert "orders_amount_check" in out and "23514" in out
    out = SelectRowsTool(client=editor).invoke(
        {"table": "orders", "filters": [{"column": "nope", "op": "eq", "value": 1}]}
    )
    assert out.startswith("The API answered 400:") and "42703" in out


def test_embedding_another_table_is_refused(
    db: DB, standin: PostgrestStandIn, editor: BrokerClient
) -> None:
    # select=*,customers(*) would read `customers` through a grant of `orders`.
    before = len(standin.received)
    with pytest.raises(BrokerRefused) as info:
        editor.get("supabase", "/rest/v1/orders", params={"select": "*,customers(*)"})
    assert info.value.decision.reason.value == "bad_request"
    assert standin.received[before:] == []


def test_the_standin_refuses_anything_but_the_real_key(standin: PostgrestStandIn) -> None:
    url = standin.url + "/rest/v1/orders"
    cases: list[dict[str, str]] = [
        {},
        {"apikey": SUPABASE_KEY},  # Authorization missing
        {"Authorization": f"Bearer {SUPABASE_KEY}"},  # apikey missing
        {"apikey": SUPABASE_KEY, "Authorization": "Bearer wrong"},
        {"apikey": "wrong", "Authorization": f"Bearer {SUPABASE_KEY}"},
    ]
    for headers in cases:
        answer = httpx.get(url, headers=headers, trust_env=False)
        assert answer.status_code == 401, headers
        assert set(answer.json()) == {"code", "message", "details", "hint"}
    both = {"apikey": SUPABASE_KEY, "Authorization": f"Bearer {SUPABASE_KEY}"}
    assert httpx.get(url, headers=both, trust_env=False).status_code == 200


def test_a_toolkit_from_a_client(db: DB, editor: BrokerClient) -> None:
    tools = {t.name: t for t in SupabaseToolkit(client=editor).get_tools()}
    out = tools["supabase_select_rows"].invoke(
        {
            "table": "orders",
            "columns": ["note"],
            "filters": [{"column": "id", "op": "eq", "value": 3}],
        }
    )
    # Rows are data a third party wrote: they come back verbatim, marked untrusted
    # in the catalog, and are never acted on by the tool.
    assert "Ignore previous instructions" in out
