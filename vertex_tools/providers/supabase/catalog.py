"""The Supabase (PostgREST) catalog: rows of tables, and remote procedure calls.

Resources are tables, listed in a grant's ``tables``. A catalog has one
resource key, so a database function that ``rpc.call`` may run is listed in
the same list as ``rpc:<function>``:

.. code-block:: toml

    [grants.reporting]
    upstream = "supabase"
    operations = ["rows.select", "rpc.call"]
    tables = ["orders", "rpc:order_total"]

The prefix keeps the two namespaces apart: granting the table ``orders`` does
not let ``rpc.call`` run a function called ``orders``, and a grant entry
``rpc:x`` never names a table (``rows.*`` refuses a table that is not a plain
name).

Provider checks, after the operation and resource passed (see
:mod:`vertex_tools.policy.engine`), in order:

1. the table or function is a plain lower-case identifier      bad_request
2. the query reads unambiguously (:mod:`.query`)                bad_request
3. ``rows.update`` and ``rows.delete`` carry at least one
   filter: PostgREST applies an unfiltered PATCH or DELETE
   to every row of the table                                    missing_filter
4. ``rows.select`` reads at most :data:`ROW_CAP` rows: a missing
   ``limit`` is added and a larger one lowered (a rewrite of the
   forwarded query, recorded in the audit log)

Headers that change what a request means are refused too: ``Prefer:
resolution=merge-duplicates`` turns an insert into an upsert, and an
``Accept-Profile`` / ``Content-Profile`` naming a schema other than
``public`` reaches tables no grant names (postgrest-py sends ``public`` on
every request, which passes).

A filter that matches every row (``id=gte.0``) is still a filter: the
missing-filter check stops the accidental whole-table write, not a deliberate
one, which only the grant (no ``rows.delete``) prevents.
"""

from __future__ import annotations

from vertex_tools.decision import Decision, Reason
from vertex_tools.policy.facts import RiskClass
from vertex_tools.providers.catalog import Catalog, CheckContext, Operation, Rewrite
from vertex_tools.providers.supabase.query import IDENTIFIER, QueryError, parse_query

__all__ = ["CATALOG", "DEFAULT_SCHEMA", "ROW_CAP", "RPC_PREFIX", "check"]

ROW_CAP = 1000
"""The most rows one ``rows.select`` may return (PostgREST's own ``db-max-rows`` idea)."""

DEFAULT_SCHEMA = "public"
"""The schema grants cover; ``Accept-Profile`` / ``Content-Profile`` may name only it."""

RPC_PREFIX = "rpc:"
"""How a grant's ``tables`` names a database function ``rpc.call`` may run."""

_READ_SHAPE = frozenset({"select", "order", "limit", "offset"})
_ALLOWED_KEYS: dict[str, frozenset[str]] = {
    "rows.select": _READ_SHAPE,
    "rows.insert": frozenset({"select", "columns", "on_conflict"}),
    "rows.update": frozenset({"select", "order", "limit", "columns"}),
    "rows.delete": frozenset({"select", "order", "limit"}),
    # A set-returning function's rows can be shaped and filtered like a table's.
    "rpc.call": _READ_SHAPE,
}
_NEEDS_FILTER = frozenset({"rows.update", "rows.delete"})
_TAKES_FILTERS = frozenset({"rows.select", "rows.update", "rows.delete", "rpc.call"})

_ROWS = ("[].*",)
"""Every column of every returned row: any of them may have been written by a third party."""


def _deny(reason: Reason, rule: str, message: str) -> Decision:
    return Decision.deny(reason, f"providers.supabase.{rule}", message)


def check(ctx: CheckContext) -> Decision | Rewrite | None:
    """Supabase's own checks (module docstring); None when the request passes unchanged."""
    op = ctx.operation
    # 1. the table or function name
    name = ctx.params.get("function" if op.name == "rpc.call" else "table", "")
    if not IDENTIFIER.match(name):
        return _deny(
            Reason.BAD_REQUEST,
            "name",
            f"{name[:70]!r} is not a plain lower-case table or function name",
        )
    # 2. headers that change what a request means: another schema, or an insert
    #    that becomes an upsert (overwriting rows the grant may only add to)
    for header, value in ctx.facts.headers:
        # postgrest-py names the default schema on every request; only another is refused.
        if header in ("accept-profile", "content-profile") and value.strip() != DEFAULT_SCHEMA:
            return _deny(
                Reason.NOT_ALLOWED,
                "schema",
                f"{header} switches to another database schema; grants cover the default one",
            )
        if header == "prefer" and "resolution=" in value.replace(" ", "").lower():
            return _deny(
                Reason.NOT_ALLOWED,
                "upsert",
                "Prefer: resolution=... turns an insert into an upsert that overwrites "
                "existing rows; use rows.update for changes",
            )
    # 3. the query
    try:
        query = parse_query(ctx.facts.query, _ALLOWED_KEYS[op.name])
    except QueryError as exc:
        return _deny(Reason.BAD_REQUEST, "query", f"{op.name}: {exc}")
    if query.filters and op.name not in _TAKES_FILTERS:
        return _deny(
            Reason.BAD_REQUEST,
            "query",
            f"{op.name} takes no filters (got {query.filters[0].column!r})",
        )
    # 4. filters on writes that touch existing rows
    if op.name in _NEEDS_FILTER and not query.filters:
        return _deny(
            Reason.MISSING_FILTER,
            "filter_required",
            f"{op.name} on {name!r} has no filter, so it would change every row; "
            "add a filter such as id=eq.<id>",
        )
    # 5. the row cap: a select, and a set-returning function's rows alike
    if op.name in ("rows.select", "rpc.call"):
        limit = query.limit
        if limit is None or limit > ROW_CAP:
            return Rewrite(query=query.with_limit(ROW_CAP))
    return None


CATALOG = Catalog(
    provider="supabase",
    operations=(
        Operation(
            name="rows.select",
            method="GET",
            path="/rest/v1/{table}",
            risk=RiskClass.READ,
            summary="Read rows of a table (at most ROW_CAP per call)",
            control=("table", "filter", "select", "order", "limit", "offset"),
            resource="{table}",
            untrusted=_ROWS,
        ),
        Operation(
            name="rows.insert",
            method="POST",
            path="/rest/v1/{table}",
            risk=RiskClass.WRITE,
            summary="Insert rows into a table",
            # The values written are control too: a row of a payouts table names a
            # recipient and an amount. Fail closed: the catalog cannot tell tables apart.
            control=("table", "columns", "on_conflict", "values"),
            content=("body",),
            resource="{table}",
            untrusted=_ROWS,
        ),
        Operation(
            name="rows.update",
            method="PATCH",
            path="/rest/v1/{table}",
            risk=RiskClass.WRITE,
            summary="Change the rows of a table that match a filter (a filter is required)",
            control=("table", "filter", "columns", "values"),
            content=("body",),
            resource="{table}",
            untrusted=_ROWS,
        ),
        Operation(
            name="rows.delete",
            method="DELETE",
            path="/rest/v1/{table}",
            risk=RiskClass.DESTRUCTIVE,
            summary="Delete the rows of a table that match a filter (a filter is required)",
            control=("table", "filter"),
            resource="{table}",
            untrusted=_ROWS,
        ),
        Operation(
            name="rpc.call",
            method="POST",
            path="/rest/v1/rpc/{function}",
            risk=RiskClass.WRITE,
            summary="Call a database function (listed in tables as rpc:<function>)",
            control=("function",),
            content=("body",),
            resource=RPC_PREFIX + "{function}",
            # A function may return rows, a scalar or JSON: all of it is data.
            untrusted=("*",),
        ),
    ),
    inject=(("apikey", "{secret}"), ("Authorization", "Bearer {secret}")),
    resource_key="tables",
    resource_pattern=r"^(rpc:)?[a-z_][a-z0-9_]{0,62}$",
    check=check,
)
