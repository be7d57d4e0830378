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
  value and every body value is control.

Values are strings as sent (numbers in JSON stay numbers).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl

from vertex_tools.policy.facts import RequestFacts, Resolved
from vertex_tools.providers.catalog import Operation

__all__ = ["MAX_VALUES", "UNCHECKED", "control_values"]

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


def _body_fields(facts: RequestFacts, body: bytes) -> tuple[dict[str, list[Value]], Any]:
    """Body values by their top-level name, and the parsed JSON (None for forms)."""
    fields: dict[str, list[Value]] = {}
    if not body:
        return fields, None
    if "json" in facts.content_type:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return {"": [body.decode("utf-8", "replace")]}, None
        if isinstance(data, dict):
            for key, value in data.items():
                fields.setdefault(str(key), []).extend(_leaves(value))
        else:
            fields[""] = list(_leaves(data))
        return fields, data
    for key, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
        match = _BASE.match(key)
        fields.setdefault(match.group(1) if match else key, []).append(value)
    return fields, None


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
    fields, parsed = _body_fields(facts, body)
    out: dict[str, list[Value]] = {}
    if provider == "http" or operation is None:
        for name, found in (*queried.items(), *fields.items()):
            out.setdefault(name or "body", []).extend(found)
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
