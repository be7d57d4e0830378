"""The control arguments of a request, read the way the broker reads requests.

The agent reports which of its tool arguments came from untrusted content
(``X-Vertex-Taint``), but a client may fail to report. The broker therefore
reads the values that steer a request itself and checks them against the
untrusted content it served to the same run (:mod:`vertex_tools.taint`).

What counts as control, per upstream:

* catalog providers: the operation's ``control`` names, found as path
  parameters, query keys and body fields (form keys ``a[b]`` count as ``a``;
  JSON: top-level keys, every leaf beneath). Supabase: ``filter`` is every
  filter value of the query, ``columns`` the names of the columns written,
  ``values`` the values written (a payouts row names a recipient and an amount).
  Path parameters that name the grant's resource (``owner``, ``repo``,
  ``table``) are left out: the grant's resource list bounds them already.
* ``http`` upstreams: the broker knows no argument names, so every query
  value, every body value and every path segment is control.

Bodies are read strictly: JSON as UTF-8 with no repeated key and no trailing
data, forms as UTF-8, text as one value. A body the broker cannot read exactly
(malformed, a repeated key the upstream may read differently, multipart,
binary) is reported as :data:`UNCHECKED`: the gate never lets it pass as clean.

Values are strings as sent (numbers in JSON stay numbers).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote

from vertex_tools.policy.facts import RequestFacts, Resolved
from vertex_tools.policy.forms import parse_form
from vertex_tools.providers.catalog import Operation

__all__ = [
    "MAX_VALUES",
    "UNCHECKED",
    "Unreadable",
    "control_values",
    "form_pairs",
    "media_type",
    "strict_json",
]

MAX_VALUES = 2_000
"""Values read from one request. A request with more cannot be checked whole: it is
reported as :data:`UNCHECKED` (the taint gate treats that as tainted: fail closed)."""
UNCHECKED = "*"

_BASE = re.compile(r"^([^\[\]]+)")
_SUPABASE_RESERVED = frozenset({"select", "order", "limit", "offset", "on_conflict", "columns"})
_RESOURCE_PARAM = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
Value = str | int | float


def _leaves(value: Any) -> Iterator[Value]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool) or item is None:
            continue
        if isinstance(item, str | int | float):
            yield item
        elif isinstance(item, dict):
            for key, sub in item.items():
                yield str(key)
                stack.append(sub)
        elif isinstance(item, list):
            stack.extend(item)


class Unreadable(ValueError):
    """A body the broker cannot read exactly as an upstream would: never a free pass."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise Unreadable(f"the JSON body repeats the key {key!r}")
        found[key] = value
    return found


def strict_json(body: bytes) -> Any:
    """Parse a JSON body as strictly as the broker must: UTF-8, no repeated key, no
    trailing data; :class:`Unreadable` otherwise."""
    try:
        return json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except Unreadable:
        raise
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise Unreadable(f"the body is declared JSON but is not ({type(exc).__name__})") from exc


def media_type(content_type: str) -> str:
    """``Application/JSON; charset=utf-8`` -> ``application/json``."""
    return content_type.split(";", 1)[0].strip().lower()


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    """A urlencoded body's pairs in order, read as UTF-8 (what upstreams read)."""
    try:
        return parse_form(body.decode("ascii"), strict=False, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise Unreadable("the form body is not ASCII-encoded UTF-8") from exc


def _body_fields(facts: RequestFacts, body: bytes) -> tuple[dict[str, list[Value]], Any]:
    """Body values by their top-level name, and the parsed JSON (None for forms).
    :class:`Unreadable` for a body the broker cannot read exactly."""
    fields: dict[str, list[Value]] = {}
    if not body:
        return fields, None
    kind = media_type(facts.content_type)
    if kind == "application/json" or kind.endswith("+json"):
        data = strict_json(body)
        if isinstance(data, dict):
            for key, value in data.items():
                fields.setdefault(str(key), []).extend(_leaves(value))
        else:
            fields[""] = list(_leaves(data))
        return fields, data
    if kind in ("application/x-www-form-urlencoded", ""):
        for key, value in form_pairs(body):
            match = _BASE.match(key)
            fields.setdefault(match.group(1) if match else key, []).append(value)
        return fields, None
    if kind.startswith("text/"):
        try:
            return {"": [body.decode("utf-8")]}, None
        except UnicodeDecodeError as exc:
            raise Unreadable("the text body is not UTF-8") from exc
    raise Unreadable(f"the broker does not read {kind} bodies (multipart, binary)")


def _query_fields(query: str) -> dict[str, list[Value]]:
    fields: dict[str, list[Value]] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        match = _BASE.match(key)
        fields.setdefault(match.group(1) if match else key, []).append(value)
    return fields


def control_values(
    provider: str,
    operation: Operation | None,
    resolved: Resolved | None,
    facts: RequestFacts,
    *,
    query: str,
    body: bytes,
) -> dict[str, list[Value]]:
    """Control argument name -> the values this request carries for it."""
    queried = _query_fields(query)
    try:
        fields, parsed = _body_fields(facts, body)
    except Unreadable as exc:
        return {UNCHECKED: [str(exc)]}
    out: dict[str, list[Value]] = {}
    if provider == "http" or operation is None:
        for name, found in (*queried.items(), *fields.items()):
            out.setdefault(name or "body", []).extend(found)
        # REST puts the object acted on in the path: its segments steer the call too.
        segments = [unquote(s) for s in facts.path.split("/") if s]
        if segments:
            out.setdefault("path", []).extend(segments)
        return _bounded(out)
    params: Mapping[str, str] = dict(resolved.params) if resolved is not None else {}
    resource_params = set(_RESOURCE_PARAM.findall(operation.resource or ""))
    for name in operation.control:
        values: list[Value] = []
        if name in params and name not in resource_params:
            values.append(params[name])
        values.extend(queried.get(name, ()))
        values.extend(fields.get(name, ()))
        if provider == "supabase" and name == "filter":
            for key, found in queried.items():
                if key not in _SUPABASE_RESERVED:
                    # "eq.mallory" filters on "mallory": the operator is not the value.
                    values.extend(str(v).split(".", 1)[-1] for v in found)
        if provider == "supabase" and name in ("columns", "values") and parsed is not None:
            rows = parsed if isinstance(parsed, list) else [parsed]
            for row in rows:
                if isinstance(row, dict):
                    if name == "columns":
                        values.extend(str(k) for k in row)
                    else:
                        values.extend(v for cell in row.values() for v in _leaves(cell))
        if values:
            out[name] = values
    return _bounded(out)


def _bounded(out: dict[str, list[Value]]) -> dict[str, list[Value]]:
    if sum(len(v) for v in out.values()) <= MAX_VALUES:
        return out
    return {UNCHECKED: [f"more than {MAX_VALUES} values"]}
