"""The SQL half of the PostgREST stand-in: its query syntax, turned into psycopg SQL.

Written from PostgREST's documentation, independently of the broker's parser
(:mod:`vertex_tools.providers.supabase.query`), so that a disagreement between
the two shows up in a test instead of being shared. Names become
``sql.Identifier`` (quoted as PostgREST quotes them), values are placeholders,
and rows are turned into JSON by PostgreSQL itself (``json_agg``), as PostgREST
does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from psycopg import sql

__all__ = ["ApiError", "Filter", "Query", "parse_in_list", "parse_query", "where"]

_COMPARE = {
    "eq": "=",
    "neq": "<>",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "like": "LIKE",
    "ilike": "ILIKE",
}
_IS = {
    "null": "IS NULL",
    "not_null": "IS NOT NULL",
    "true": "IS TRUE",
    "false": "IS FALSE",
    "unknown": "IS UNKNOWN",
}
_RESERVED = {"select", "order", "limit", "offset", "columns", "on_conflict"}


class ApiError(Exception):
    """An error answered in PostgREST's shape: ``{code, message, details, hint}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "message": message, "details": details, "hint": hint}


def _parse_error(details: str) -> ApiError:
    return ApiError(400, "PGRST100", '"failed to parse filter"', details)


@dataclass(frozen=True)
class Filter:
    """``column=op.value``."""

    column: str
    op: str
    value: str


@dataclass
class Query:
    """A PostgREST query string, read."""

    select: list[str] | None = None
    """Column names; None for ``*``."""
    filters: list[Filter] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)
    """(column, descending)."""
    limit: int | None = None
    offset: int | None = None
    columns: list[str] | None = None
    on_conflict: list[str] | None = None


def parse_in_list(text: str) -> list[str]:
    """``(a,"b,c","d\\"e")`` -> ``['a', 'b,c', 'd"e']``: PostgREST's in-list syntax."""
    if not (text.startswith("(") and text.endswith(")")):
        raise _parse_error(f"in. expects a list in parentheses, got {text!r}")
    body = text[1:-1]
    if not body:
        return []
    items: list[str] = []
    i = 0
    while True:
        if i < len(body) and body[i] == '"':
            i += 1
            out: list[str] = []
            while True:
                if i >= len(body):
                    raise _parse_error(f"unterminated quote in {text!r}")
                if body[i] == "\\" and i + 1 < len(body):
                    out.append(body[i + 1])
                    i += 2
                elif body[i] == '"':
                    i += 1
                    break
                else:
                    out.append(body[i])
                    i += 1
            items.append("".join(out))
        else:
            end = body.find(",", i)
            end = len(body) if end == -1 else end
            items.append(body[i:end])
            i = end
        if i == len(body):
            return items
        if body[i] != ",":
            raise _parse_error(f"expected ',' after an item in {text!r}")
        i += 1


def parse_query(query_string: str) -> Query:
    """Read a raw query string; :class:`ApiError` (400, PGRST100) when it is malformed."""
    try:
        pairs = parse_qsl(query_string, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise _parse_error(str(exc)) from exc
    query = Query()
    for key, value in pairs:
        if key == "select":
            query.select = None if value == "*" else value.split(",")
        elif key == "order":
            for item in value.split(","):
                column, _, direction = item.partition(".")
                if direction not in ("", "asc", "desc"):
                    raise _parse_error(f"unknown order {item!r}")
                query.order.append((column, direction == "desc"))
        elif key in ("limit", "offset"):
            if not value.isdigit():
                raise _parse_error(f"{key}={value!r} is not a number")
            setattr(query, key, int(value))
        elif key in ("columns", "on_conflict"):
            setattr(query, key, value.split(","))
        else:
            op, dot, operand = value.partition(".")
            if not dot or (op not in _COMPARE and op not in ("in", "is")):
                raise _parse_error(f"unknown operator in {key}={value!r}")
            if op == "is" and operand not in _IS:
                raise _parse_error(f"is. takes null, not_null, true, false or unknown: {value!r}")
            if op == "in":
                parse_in_list(operand)  # fail early on a malformed list
            query.filters.append(Filter(key, op, operand))
    return query


def where(table: str, filters: list[Filter]) -> tuple[sql.Composable, list[object]]:
    """``WHERE ...`` (or nothing) for ``filters``, columns qualified by ``table``."""
    if not filters:
        return sql.SQL(""), []
    parts: list[sql.Composable] = []
    params: list[object] = []
    for f in filters:
        column = sql.Identifier(table, f.column)
        if f.op == "is":
            parts.append(sql.SQL("{} " + _IS[f.value]).format(column))
        elif f.op == "in":
            items = parse_in_list(f.value)
            if not items:
                parts.append(sql.SQL("false"))
                continue
            holes = sql.SQL(", ").join(sql.Placeholder() * len(items))
            parts.append(sql.SQL("{} IN ({})").format(column, holes))
            params.extend(items)
        else:
            value = f.value.replace("*", "%") if f.op in ("like", "ilike") else f.value
            parts.append(sql.SQL("{} " + _COMPARE[f.op] + " %s").format(column))
            params.append(value)
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts), params


def returning(table: str, select: list[str] | None) -> sql.Composable:
    """The ``RETURNING`` / ``SELECT`` list for ``select=``."""
    if select is None:
        return sql.SQL("{}.*").format(sql.Identifier(table))
    return sql.SQL(", ").join(sql.Identifier(table, c) for c in select)


def select_sql(table: str, query: Query) -> tuple[sql.Composed, list[object]]:
    """GET: the rows as one JSON array."""
    clause, params = where(table, query.filters)
    order: sql.Composable = sql.SQL("")
    if query.order:
        order = sql.SQL(" ORDER BY ") + sql.SQL(", ").join(
            sql.SQL("{} DESC" if desc else "{} ASC").format(sql.Identifier(table, column))
            for column, desc in query.order
        )
    tail: sql.Composable = sql.SQL("")
    if query.limit is not None:
        tail += sql.SQL(" LIMIT %s")
        params.append(query.limit)
    if query.offset is not None:
        tail += sql.SQL(" OFFSET %s")
        params.append(query.offset)
    inner = sql.SQL("SELECT {} FROM {}{}{}{}").format(
        returning(table, query.select), sql.Identifier(table), clause, order, tail
    )
    return sql.SQL("SELECT coalesce(json_agg(_t), '[]'::json) FROM ({}) AS _t").format(
        inner
    ), params


def _aggregate(cte: sql.Composable) -> sql.Composed:
    return sql.SQL("WITH _w AS ({}) SELECT coalesce(json_agg(_w), '[]'::json) FROM _w").format(cte)


def insert_sql(table: str, columns: list[str], query: Query) -> sql.Composed:
    """POST: ``json_populate_recordset`` types the JSON by the table's columns, as PostgREST."""
    names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    return _aggregate(
        sql.SQL(
            "INSERT INTO {table} ({names}) SELECT {names} "
            "FROM json_populate_recordset(NULL::{table}, %s::json) RETURNING {ret}"
        ).format(table=sql.Identifier(table), names=names, ret=returning(table, query.select))
    )


def update_sql(table: str, columns: list[str], query: Query) -> tuple[sql.Composed, list[object]]:
    """PATCH: the new values come typed from ``json_populate_record``; the body is param 1."""
    clause, params = where(table, query.filters)
    sets = sql.SQL(", ").join(
        sql.SQL("{} = _r.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in columns
    )
    statement = sql.SQL(
        "UPDATE {table} SET {sets} FROM json_populate_record(NULL::{table}, %s::json) AS _r"
        "{where} RETURNING {ret}"
    ).format(
        table=sql.Identifier(table), sets=sets, where=clause, ret=returning(table, query.select)
    )
    return _aggregate(statement), params


def delete_sql(table: str, query: Query) -> tuple[sql.Composed, list[object]]:
    """DELETE."""
    clause, params = where(table, query.filters)
    statement = sql.SQL("DELETE FROM {}{} RETURNING {}").format(
        sql.Identifier(table), clause, returning(table, query.select)
    )
    return _aggregate(statement), params


def is_reserved(key: str) -> bool:
    """True for query keys that are not filters."""
    return key in _RESERVED
