"""The Supabase catalog: which request is which operation, and the provider's own checks."""

from __future__ import annotations

import re

import pytest

from vertex_tools.decision import Decision, Reason
from vertex_tools.policy.facts import RequestFacts, RiskClass
from vertex_tools.providers import get_catalog
from vertex_tools.providers.catalog import CheckContext, Rewrite
from vertex_tools.providers.supabase.catalog import CATALOG, ROW_CAP, check
from vertex_tools.providers.supabase.query import QueryError, parse_query


def segments(path: str) -> list[str]:
    return path[1:].split("/")


@pytest.mark.parametrize(
    ("method", "path", "name", "params", "resource"),
    [
        ("GET", "/rest/v1/orders", "rows.select", {"table": "orders"}, "orders"),
        ("POST", "/rest/v1/orders", "rows.insert", {"table": "orders"}, "orders"),
        ("PATCH", "/rest/v1/orders", "rows.update", {"table": "orders"}, "orders"),
        ("DELETE", "/rest/v1/orders", "rows.delete", {"table": "orders"}, "orders"),
        (
            "POST",
            "/rest/v1/rpc/order_total",
            "rpc.call",
            {"function": "order_total"},
            "rpc:order_total",
        ),
        # A table called "rpc" is a table: the function route has one more segment.
        ("POST", "/rest/v1/rpc", "rows.insert", {"table": "rpc"}, "rpc"),
    ],
)
def test_requests_map_to_operations(
    method: str, path: str, name: str, params: dict[str, str], resource: str
) -> None:
    match = CATALOG.match(method, segments(path))
    assert match is not None
    op, got = match
    assert (op.name, got, op.resource_of(got)) == (name, params, resource)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/rest/v1/orders"),  # PostgREST's single-row upsert: not catalogued
        ("HEAD", "/rest/v1/orders"),
        ("GET", "/rest/v1/rpc/order_total"),  # RPC over GET
        ("PATCH", "/rest/v1/rpc/order_total"),
        ("GET", "/rest/v1"),  # the OpenAPI root
        ("GET", "/rest/v2/orders"),
        ("GET", "/auth/v1/users"),
        ("GET", "/storage/v1/object/bucket/file"),
        ("GET", "/rest/v1/orders/1"),
    ],
)
def test_unknown_requests_match_nothing(method: str, path: str) -> None:
    assert CATALOG.match(method, segments(path)) is None


def test_operations_risk_and_untrusted_rows() -> None:
    risks = {name: CATALOG.get(name).risk for name in CATALOG.names}  # type: ignore[union-attr]
    assert risks == {
        "rows.select": RiskClass.READ,
        "rows.insert": RiskClass.WRITE,
        "rows.update": RiskClass.WRITE,
        "rows.delete": RiskClass.DESTRUCTIVE,
        "rpc.call": RiskClass.WRITE,
    }
    for name in CATALOG.names:
        op = CATALOG.get(name)
        assert op is not None and op.untrusted, f"{name} must mark its answer untrusted"
        assert op.amount is None  # nothing here moves money
    assert get_catalog("supabase") is CATALOG


def test_key_is_injected_twice() -> None:
    assert CATALOG.inject == (("apikey", "{secret}"), ("Authorization", "Bearer {secret}"))
    assert CATALOG.resource_key == "tables"


@pytest.mark.parametrize(
    ("entry", "valid"),
    [
        ("orders", True),
        ("_private", True),
        ("order_items2", True),
        ("rpc:order_total", True),
        ("a" * 63, True),
        ("a" * 64, False),  # PostgreSQL's identifier limit is 63
        ("Orders", False),
        ("public.orders", False),
        ("orders*", False),
        ("rpc:", False),
        ("rpc:Total", False),
        ("rpc:rpc:x", False),
        ("1orders", False),
        ("", False),
    ],
)
def test_resource_pattern(entry: str, valid: bool) -> None:
    assert CATALOG.resource_pattern is not None
    assert bool(re.fullmatch(CATALOG.resource_pattern, entry)) is valid


# -- the query parser, on its own


@pytest.mark.parametrize(
    ("raw", "filters", "reserved"),
    [
        ("", [], {}),
        ("select=*", [], {"select": "*"}),
        ("select=id%2Cname&status=eq.open", [("status", "eq", "open")], {"select": "id,name"}),
        ("name=eq.a+b%26c", [("name", "eq", "a b&c")], {}),
        ("id=in.%281%2C%22a%2C%5C%22b%22%29", [("id", "in", '(1,"a,\\"b")')], {}),
        ("id=in.()", [("id", "in", "()")], {}),
        ("note=is.null&done=is.true", [("note", "is", "null"), ("done", "is", "true")], {}),
        ("name=like.*acme*", [("name", "like", "*acme*")], {}),
        (
            "amount=gte.10&limit=5&offset=10",
            [("amount", "gte", "10")],
            {"limit": "5", "offset": "10"},
        ),
        ("order=id.desc%2Cname.asc.nullslast", [], {"order": "id.desc,name.asc.nullslast"}),
        ("note=eq.", [("note", "eq", "")], {}),
    ],
)
def test_queries_the_broker_reads(
    raw: str, filters: list[tuple[str, str, str]], reserved: dict[str, str]
) -> None:
    parsed = parse_query(raw, frozenset({"select", "order", "limit", "offset"}))
    assert [(f.column, f.operator, f.value) for f in parsed.filters] == filters
    assert parsed.reserved == reserved


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("id=eq.1;limit=99999", "percent-encoded"),  # PostgREST splits on ';' too
        ("id=eq.1&id=eq.2", "twice"),
        ("limit=5&limit=50000", "twice"),
        ("id=eq.1&&x=eq.2", "key=value"),
        ("id", "key=value"),
        ("=eq.1", "key=value"),
        ("id=eq.%zz", "percent-escape"),
        ("id=eq.%ff", "UTF-8"),
        ("id=eq.caf\u00e9", "percent-encoded"),
        ("id=eq.a b", "percent-encoded"),
        ("id=not.eq.1", "operator"),
        ("id=ilike.x", "operator"),
        ("id=fts.cat", "operator"),
        ("id=like(any).%7Ba,b%7D", "operator"),
        ("id=like(any).{a,b}", "percent-encoded"),
        ("id=1", "operator"),
        ("id=in.1,2", "list"),
        ("id=in.(1,(2))", "list"),
        ("note=is.nothing", "'is' takes"),
        ("or=(id.eq.1,id.eq.2)", "or/and/not"),
        ("customers.name=eq.x", "embedded"),
        ("Name=eq.x", "plain column"),
        ("select=*,customers(*)", "plain column"),
        ("select=id,c:customers(name)", "plain column"),
        ("select=id::text", "plain column"),
        ("select=data-%3E%3Ex", "plain column"),
        ("select=id,id", "twice"),
        ("order=id.sideways", "column.asc"),
        ("order=customers(name).asc", "column.asc"),
        ("limit=-1", "non-negative"),
        ("limit=1e3", "non-negative"),
        ("limit=1234567890", "non-negative"),
        ("columns=id", "not used"),
    ],
)
def test_queries_the_broker_refuses(raw: str, needle: str) -> None:
    with pytest.raises(QueryError, match=re.escape(needle)):
        parse_query(raw, frozenset({"select", "order", "limit", "offset"}))


def test_limit_rewrite_keeps_every_other_byte() -> None:
    parsed = parse_query(
        "select=id%2Cname&limit=5000&status=eq.a+b", frozenset({"select", "limit"})
    )
    assert parsed.with_limit(ROW_CAP) == "select=id%2Cname&limit=1000&status=eq.a+b"
    parsed = parse_query("status=eq.open", frozenset({"limit"}))
    assert parsed.with_limit(ROW_CAP) == "status=eq.open&limit=1000"
    assert parse_query("", frozenset()).with_limit(7) == "limit=7"


# -- the provider check, as the engine calls it


def run_check(method: str, path: str, query: str = "") -> Decision | Rewrite | None:
    match = CATALOG.match(method, segments(path))
    assert match is not None
    op, params = match
    facts = RequestFacts("supabase", method, path, query, "application/json", b"{}")
    return check(CheckContext(op, params, facts, ("orders",), "g"))


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        # select: capped
        ("GET", "/rest/v1/orders", "", "limit=1000"),
        ("GET", "/rest/v1/orders", "limit=5000", "limit=1000"),
        ("GET", "/rest/v1/orders", "select=id&limit=1001", "select=id&limit=1000"),
        ("GET", "/rest/v1/orders", "limit=1000", None),
        ("GET", "/rest/v1/orders", "limit=10&status=eq.open", None),
        ("GET", "/rest/v1/orders", "limit=0", None),
        # update and delete need a filter
        ("PATCH", "/rest/v1/orders", "", Reason.MISSING_FILTER),
        ("PATCH", "/rest/v1/orders", "select=id", Reason.MISSING_FILTER),
        ("PATCH", "/rest/v1/orders", "limit=1", Reason.MISSING_FILTER),
        ("PATCH", "/rest/v1/orders", "id=eq.1", None),
        ("DELETE", "/rest/v1/orders", "", Reason.MISSING_FILTER),
        ("DELETE", "/rest/v1/orders", "order=id&limit=1", Reason.MISSING_FILTER),
        ("DELETE", "/rest/v1/orders", "id=in.(1,2)", None),
        ("DELETE", "/rest/v1/orders", "note=is.null", None),
        # a filter that is not one is refused, not counted
        ("DELETE", "/rest/v1/orders", "id=not.is.null", Reason.BAD_REQUEST),
        ("DELETE", "/rest/v1/orders", "or=(id.eq.1)", Reason.BAD_REQUEST),
        ("DELETE", "/rest/v1/orders", "id=eq.1;id=gte.0", Reason.BAD_REQUEST),
        # insert takes no filters; update takes no offset
        ("POST", "/rest/v1/orders", "", None),
        ("POST", "/rest/v1/orders", "columns=customer%2Camount&select=id", None),
        ("POST", "/rest/v1/orders", "id=eq.1", Reason.BAD_REQUEST),
        ("PATCH", "/rest/v1/orders", "id=eq.1&offset=3", Reason.BAD_REQUEST),
        ("PATCH", "/rest/v1/orders", "id=eq.1&on_conflict=id", Reason.BAD_REQUEST),
        # names that are not plain identifiers
        ("GET", "/rest/v1/Orders", "", Reason.BAD_REQUEST),
        ("GET", "/rest/v1/ord%65rs", "", Reason.BAD_REQUEST),
        ("GET", "/rest/v1/rpc:order_total", "", Reason.BAD_REQUEST),
        ("POST", "/rest/v1/rpc/Order_total", "", Reason.BAD_REQUEST),
        # rpc: capped like a select (a set-returning function), read-shaping keys allowed
        ("POST", "/rest/v1/rpc/order_total", "", "limit=1000"),
        ("POST", "/rest/v1/rpc/orders_by_status", "select=id&limit=5", None),
        ("POST", "/rest/v1/rpc/orders_by_status", "limit=5000", "limit=1000"),
        ("POST", "/rest/v1/rpc/orders_by_status", "columns=id", Reason.BAD_REQUEST),
    ],
)
def test_provider_check(method: str, path: str, query: str, expected: str | Reason | None) -> None:
    outcome = run_check(method, path, query)
    if expected is None:
        assert outcome is None
    elif isinstance(expected, Reason):
        assert isinstance(outcome, Decision)
        assert outcome.reason is expected
        assert outcome.rule.startswith("providers.supabase.")
    else:
        assert outcome == Rewrite(query=expected)
