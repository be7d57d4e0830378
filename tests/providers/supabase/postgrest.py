"""A PostgREST-compatible server in front of a real PostgreSQL: the Supabase stand-in.

PostgREST itself is not packaged here, so the tests own this one. It speaks
the part of PostgREST's API that Supabase clients and our tools use::

    GET    /rest/v1/{table}      ?select=a,b  &col=op.value  &order=col.desc  &limit=  &offset=
    POST   /rest/v1/{table}      a JSON object or array of objects (same keys), ?columns=
    PATCH  /rest/v1/{table}      a JSON object of new values, filters in the query
    DELETE /rest/v1/{table}      filters in the query
    POST   /rest/v1/rpc/{fn}     named arguments as a JSON object

Filters: eq, neq, gt, gte, lt, lte, like, ilike, in, is. ``Prefer:
return=representation`` returns the written rows; otherwise POST answers 201
and PATCH/DELETE 204, without a body. Errors have PostgREST's shape
``{"code", "message", "details", "hint"}``; database errors carry SQLSTATE.

Like Supabase's gateway it wants the project key twice: ``apikey: <key>``
and ``Authorization: Bearer <key>``; anything else is 401. Every request is
recorded (method, path, raw query, headers) so tests can prove what crossed
the broker.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from aiohttp import web
from psycopg import sql

from tests.providers.supabase.postgrest_sql import (
    ApiError,
    Query,
    delete_sql,
    insert_sql,
    parse_query,
    select_sql,
    update_sql,
)
from vertex_tools.demo.server import LoopbackServer

__all__ = ["PostgrestStandIn", "Received"]

_JSON = "application/json; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the stand-in saw it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]


def _status_of(sqlstate: str | None) -> int:
    """PostgREST's mapping of SQLSTATE to HTTP status (the cases the tests meet)."""
    if sqlstate is None:
        return 500
    if sqlstate in ("23503", "23505"):
        return 409
    if sqlstate == "42501":
        return 403
    if sqlstate in ("42P01", "42883"):
        return 404
    if sqlstate[:2] in ("22", "23", "42") or sqlstate == "P0001":
        return 400
    return 500


class PostgrestStandIn(LoopbackServer):
    """Runs on 127.0.0.1:0 in a background thread; ``conninfo`` names the database."""

    def __init__(self, conninfo: str, key: str) -> None:
        super().__init__()
        self.conninfo = conninfo
        self._key = key
        self.received: list[Received] = []
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()

    async def make_app(self) -> web.Application:
        self._conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        app = web.Application(middlewares=[self._record, self._auth, self._errors])
        app.router.add_post("/rest/v1/rpc/{function}", self._rpc)
        app.router.add_get("/rest/v1/{table}", self._select)
        app.router.add_post("/rest/v1/{table}", self._insert)
        app.router.add_patch("/rest/v1/{table}", self._update)
        app.router.add_delete("/rest/v1/{table}", self._delete)
        return app

    async def on_stop(self) -> None:
        """Disconnect from the database."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    # -- middlewares: record, authenticate, answer errors in PostgREST's shape

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.received.append(
            Received(
                request.method,
                request.rel_url.raw_path,
                request.rel_url.raw_query_string,
                {k.lower(): v for k, v in request.headers.items()},
            )
        )
        return await handler(request)

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        apikey = request.headers.get("apikey", "")
        bearer = request.headers.get("Authorization", "")
        if not (
            hmac.compare_digest(apikey.encode(), self._key.encode())
            and hmac.compare_digest(bearer.encode(), f"Bearer {self._key}".encode())
        ):
            return web.json_response(
                {
                    "code": "PGRST301",
                    "message": "Invalid API key",
                    "details": "both apikey and Authorization: Bearer must carry the project key",
                    "hint": "Double check your Supabase `anon` or `service_role` API key.",
                },
                status=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return await handler(request)

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return web.json_response(exc.body, status=exc.status)
        except psycopg.Error as exc:
            diag = exc.diag
            body = {
                "code": exc.sqlstate,
                "message": diag.message_primary or str(exc),
                "details": diag.message_detail,
                "hint": diag.message_hint,
            }
            return web.json_response(body, status=_status_of(exc.sqlstate))

    # -- helpers

    async def _fetch_json(self, statement: sql.Composed, params: list[object]) -> Any:
        assert self._conn is not None
        async with self._lock, self._conn.transaction():
            cursor = await self._conn.execute(statement, params)
            row = await cursor.fetchone()
        return None if row is None else row[0]

    async def _table(self, request: web.Request) -> str:
        table = request.match_info["table"]
        assert self._conn is not None
        async with self._lock:
            cursor = await self._conn.execute(
                "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = 'public' AND tablename = %s",
                [table],
            )
            found = await cursor.fetchone()
        if found is None:
            raise ApiError(
                404,
                "PGRST205",
                f"Could not find the table 'public.{table}' in the schema cache",
            )
        return table

    @staticmethod
    async def _body(request: web.Request) -> Any:
        raw = await request.read()
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "PGRST102", "Empty or invalid json") from exc

    @staticmethod
    def _wants_rows(request: web.Request) -> bool:
        prefer = request.headers.get("Prefer", "")
        return "return=representation" in [p.strip() for p in prefer.split(",")]

    @staticmethod
    def _no_limits(query: Query) -> None:
        if query.limit is not None or query.offset is not None or query.order:
            raise ApiError(400, "PGRST100", "limit, offset and order are not supported here")

    # -- routes

    async def _select(self, request: web.Request) -> web.Response:
        table = await self._table(request)
        query = parse_query(request.rel_url.raw_query_string)
        rows = await self._fetch_json(*select_sql(table, query))
        return web.json_response(rows, content_type="application/json")

    async def _insert(self, request: web.Request) -> web.Response:
        table = await self._table(request)
        query = parse_query(request.rel_url.raw_query_string)
        if query.filters:
            raise ApiError(400, "PGRST100", "filters are not allowed on insert")
        body = await self._body(request)
        rows = body if isinstance(body, list) else [body]
        if not all(isinstance(r, dict) for r in rows):
            raise ApiError(400, "PGRST102", "Empty or invalid json")
        columns = query.columns or (list(rows[0]) if rows else [])
        if query.columns is None and any(set(r) != set(columns) for r in rows):
            raise ApiError(400, "PGRST102", "All object keys must match")
        if not rows or not columns:
            return self._written(request, 201, [])
        written = await self._fetch_json(insert_sql(table, columns, query), [json.dumps(rows)])
        return self._written(request, 201, written)

    async def _update(self, request: web.Request) -> web.Response:
        table = await self._table(request)
        query = parse_query(request.rel_url.raw_query_string)
        self._no_limits(query)
        body = await self._body(request)
        if not isinstance(body, dict) or not body:
            raise ApiError(400, "PGRST102", "Empty or invalid json")
        statement, params = update_sql(table, list(body), query)
        written = await self._fetch_json(statement, [json.dumps(body), *params])
        return self._written(request, 200, written)

    async def _delete(self, request: web.Request) -> web.Response:
        table = await self._table(request)
        query = parse_query(request.rel_url.raw_query_string)
        self._no_limits(query)
        written = await self._fetch_json(*delete_sql(table, query))
        return self._written(request, 200, written)

    def _written(self, request: web.Request, status: int, rows: Any) -> web.Response:
        if self._wants_rows(request):
            return web.json_response(rows, status=status)
        return web.Response(status=201 if status == 201 else 204)

    async def _rpc(self, request: web.Request) -> web.Response:
        function = request.match_info["function"]
        query = request.rel_url.query
        if set(query) - {"limit"} or len(query.getall("limit", [])) > 1:
            raise ApiError(400, "PGRST100", "only limit is supported on rpc here")
        limit_text = query.get("limit")
        if limit_text is not None and not limit_text.isdigit():
            raise ApiError(400, "PGRST100", "limit must be a whole number")
        limit = int(limit_text) if limit_text is not None else None
        args = await self._body(request) if await request.read() else {}  # read() is cached
        if not isinstance(args, dict):
            raise ApiError(400, "PGRST102", "Empty or invalid json")
        proc = await self._find_function(function, sorted(args))
        result = await self._call(function, proc, args, limit)
        if proc.returns_void:
            return web.Response(status=204)
        return web.json_response(result)

    async def _find_function(self, function: str, names: list[str]) -> _Proc:
        assert self._conn is not None
        async with self._lock:
            cursor = await self._conn.execute(_FIND_FUNCTION, [function])
            candidates = await cursor.fetchall()
        for retset, typtype, arg_names, arg_types, returns_void in candidates:
            if sorted(arg_names) == names:
                pairs = list(zip(arg_names, arg_types, strict=True))
                return _Proc(retset, typtype == "c", pairs, returns_void)
        raise ApiError(
            404,
            "PGRST202",
            f"Could not find the function public.{function}({', '.join(names)}) "
            "in the schema cache",
        )

    async def _call(
        self, function: str, proc: _Proc, args: dict[str, Any], limit: int | None = None
    ) -> Any:
        # Arguments arrive as one JSON object, typed by the function's own signature
        # (json_to_record), like PostgREST: no value is ever spliced into the SQL.
        params: list[object] = []
        source: sql.Composable = sql.SQL("")
        call_args: sql.Composable = sql.SQL("")
        if proc.args:
            definitions = sql.SQL(", ").join(
                # The type names come from pg_proc (format_type), not from the request.
                sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(type_name))
                for name, type_name in proc.args
            )
            source = sql.SQL("json_to_record(%s::json) AS _a({}), ").format(definitions)
            call_args = sql.SQL(", ").join(
                sql.SQL("{} => _a.{}").format(sql.Identifier(n), sql.Identifier(n))
                for n, _ in proc.args
            )
            params.append(json.dumps(args))
        call = sql.SQL("{}({})").format(sql.Identifier(function), call_args)
        if proc.returns_set:
            # A set's rows are limited like a table's (PostgREST wraps the call the same way).
            inner = sql.SQL("SELECT _r FROM {}LATERAL {} AS _r").format(source, call)
            if limit is not None:
                inner = sql.SQL("{} LIMIT %s").format(inner)
            statement = sql.SQL(
                "SELECT coalesce(json_agg(_q._r), '[]'::json) FROM ({}) AS _q"
            ).format(inner)
        else:
            shape = sql.SQL("to_json(_r)")
            statement = sql.SQL("SELECT {} FROM {}LATERAL {} AS _r").format(shape, source, call)
        if proc.returns_void:
            statement = sql.SQL("SELECT NULL FROM {}LATERAL {} AS _r").format(source, call)
        elif proc.returns_set and limit is not None:
            params.append(limit)
        return await self._fetch_json(statement, params)


@dataclass(frozen=True, slots=True)
class _Proc:
    returns_set: bool
    composite: bool
    args: list[tuple[str, str]]
    returns_void: bool


_FIND_FUNCTION = """
SELECT p.proretset, rt.typtype,
       coalesce(p.proargnames, ARRAY[]::text[]),
       ARRAY(SELECT format_type(a.t, NULL)
             FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, n) ORDER BY a.n),
       p.prorettype = 'void'::regtype
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_type rt ON rt.oid = p.prorettype
WHERE n.nspname = 'public' AND p.proname = %s
"""
