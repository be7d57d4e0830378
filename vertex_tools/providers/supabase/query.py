"""PostgREST query strings, read strictly (broker side).

The broker decides on the query it parsed and forwards the query it received,
so the parse must agree with PostgREST's on every input it accepts. Anything
whose meaning could differ between the two parsers, or that reaches past the
table the policy named, is refused instead of interpreted:

* a raw ``;`` (PostgREST's query parser, Haskell's http-types, splits pairs on
  ``;`` as well as ``&``; Python does not), raw bytes outside RFC 3986's query
  characters, malformed percent-escapes, text that is not UTF-8;
* empty pairs, pairs without ``=``, and any key given twice (which ``limit``
  would PostgREST read?);
* filter keys that are not plain column names: ``customers.name`` (a filter on
  an embedded table), ``or`` / ``and`` / ``not`` (logical trees);
* operators outside :data:`OPERATORS` (``not.eq``, ``fts``, ``like(any)`` ...);
* ``select`` items other than ``*`` and column names: ``customers(*)`` embeds
  another table, which would read a table the grant does not list.

Invariant: every key of a parsed query is either a reserved key the operation
takes or a column filter with a known operator. Values are percent-decoded
(``+`` is a space, as for PostgREST).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

__all__ = [
    "IDENTIFIER",
    "IDENTIFIER_PATTERN",
    "IS_VALUES",
    "OPERATORS",
    "RESERVED",
    "Filter",
    "ParsedQuery",
    "QueryError",
    "parse_query",
]

IDENTIFIER_PATTERN = r"[a-z_][a-z0-9_]{0,62}"
"""A table, column or function name, unanchored (for pydantic field patterns too)."""
IDENTIFIER = re.compile(rf"^{IDENTIFIER_PATTERN}\Z")
"""A table, function or column name the broker accepts: lower case, unquoted, at most
63 characters (PostgreSQL's limit). Anything else would need quoting rules to agree."""

RESERVED = frozenset({"select", "order", "limit", "offset", "on_conflict", "columns"})
"""Query keys that shape a request instead of filtering rows."""

OPERATORS = frozenset({"eq", "neq", "gt", "lt", "gte", "lte", "in", "is", "like"})
"""Filter operators the broker accepts."""

IS_VALUES = frozenset({"null", "not_null", "true", "false", "unknown"})
"""What ``is.`` may compare with."""

_LOGICAL = frozenset({"or", "and", "not"})
# RFC 3986 query characters without ';' (a pair separator for PostgREST) and '#'.
_RAW_QUERY = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,=:@/?%]*\Z")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_NUMBER = re.compile(r"^[0-9]{1,9}\Z")
_ORDER_ITEM = re.compile(
    r"^(?P<column>[a-z_][a-z0-9_]{0,62})(\.(asc|desc))?(\.(nullsfirst|nullslast))?\Z"
)
# One item of an ``in.(...)`` list: a double-quoted string with \" and \\ escapes,
# or a bare value without quotes, commas, parentheses or backslashes.
_IN_ITEM = r'(?:"(?:[^"\\]|\\["\\])*"|[^",()\\]+)'
_IN_LIST = re.compile(rf"^\((?:{_IN_ITEM}(?:,{_IN_ITEM})*)?\)\Z")


class QueryError(ValueError):
    """The query is not one the broker can read unambiguously; the message says why."""


@dataclass(frozen=True, slots=True)
class Filter:
    """One ``column=operator.value`` condition, decoded."""

    column: str
    operator: str
    value: str


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """A query string, checked: reserved keys, filters, and the raw pairs to forward."""

    raw_pairs: tuple[tuple[str, str], ...]
    """(decoded key, raw ``key=value`` text) in arrival order, for rewriting."""
    reserved: dict[str, str]
    """Decoded values of reserved keys."""
    filters: tuple[Filter, ...]

    @property
    def limit(self) -> int | None:
        """The ``limit`` asked for, or None."""
        text = self.reserved.get("limit")
        return None if text is None else int(text)

    def with_limit(self, limit: int) -> str:
        """The raw query with ``limit`` set to ``limit`` (replaced in place, or appended)."""
        pairs = [f"limit={limit}" if key == "limit" else raw for key, raw in self.raw_pairs]
        if "limit" not in self.reserved:
            pairs.append(f"limit={limit}")
        return "&".join(pairs)


def _decode(text: str, what: str) -> str:
    if _BAD_ESCAPE.search(text):
        raise QueryError(f"{what} has a malformed percent-escape")
    try:
        return unquote_plus(text, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise QueryError(f"{what} is not UTF-8 once decoded") from exc


def _names(value: str, key: str) -> None:
    items = value.split(",")
    for item in items:
        if not IDENTIFIER.match(item):
            raise QueryError(f"{key}={value!r}: {item!r} is not a plain column name")
    if len(set(items)) != len(items):
        raise QueryError(f"{key}={value!r} names a column twice")


def _check_reserved(key: str, value: str) -> None:
    if key in ("limit", "offset"):
        if not _NUMBER.match(value):
            raise QueryError(f"{key}={value!r} is not a non-negative integer")
    elif key == "select":
        # '*' or column names only: 'customers(*)' or 'c:customers(*)' embeds another
        # table, '::' casts and '->' paths are refused rather than interpreted.
        if value != "*":
            _names(value, key)
    elif key == "order":
        for item in value.split(","):
            if not _ORDER_ITEM.match(item):
                raise QueryError(
                    f"order={value!r}: {item!r} is not 'column', 'column.asc' or 'column.desc'"
                )
    else:  # columns, on_conflict
        _names(value, key)


def _filter(key: str, value: str) -> Filter:
    if not IDENTIFIER.match(key) or key in _LOGICAL:
        raise QueryError(
            f"{key!r} is neither a reserved key nor a plain column name "
            "(embedded-table filters and or/and/not trees are not accepted)"
        )
    operator, dot, operand = value.partition(".")
    if not dot or operator not in OPERATORS:
        raise QueryError(
            f"{key}={value[:60]!r}: the filter must be 'operator.value' with an operator "
            f"among {', '.join(sorted(OPERATORS))}"
        )
    if operator == "in" and not _IN_LIST.match(operand):
        raise QueryError(f'{key}=in.{operand[:60]!r} is not a list like (1,2) or ("a","b")')
    if operator == "is" and operand not in IS_VALUES:
        raise QueryError(
            f"{key}=is.{operand[:20]!r}: 'is' takes one of {', '.join(sorted(IS_VALUES))}"
        )
    return Filter(key, operator, operand)


def parse_query(raw: str, allowed: frozenset[str]) -> ParsedQuery:
    """Read the raw (still percent-encoded) query string of one request.

    ``allowed`` are the reserved keys the operation takes; a reserved key outside
    it, or anything listed in the module docstring, raises :class:`QueryError`.
    """
    if not _RAW_QUERY.match(raw):
        raise QueryError(
            "the query has characters that must be percent-encoded (a raw ';' separates "
            "pairs for PostgREST and not for the broker)"
        )
    raw_pairs: list[tuple[str, str]] = []
    reserved: dict[str, str] = {}
    filters: list[Filter] = []
    seen: set[str] = set()
    for part in raw.split("&") if raw else ():
        raw_key, eq, raw_value = part.partition("=")
        if not raw_key or not eq:
            raise QueryError(f"query part {part[:60]!r} is not key=value")
        key = _decode(raw_key, "a query key")
        value = _decode(raw_value, f"the value of {key!r}")
        if key in seen:
            raise QueryError(f"{key!r} is given twice; give each key once")
        seen.add(key)
        if key in RESERVED:
            if key not in allowed:
                raise QueryError(f"{key!r} is not used with this operation")
            _check_reserved(key, value)
            reserved[key] = value
        else:
            filters.append(_filter(key, value))
        raw_pairs.append((key, part))
    return ParsedQuery(tuple(raw_pairs), reserved, tuple(filters))
