"""GitHub's published OpenAPI description, as a checker of requests and responses.

The description comes from the npm package ``@octokit/openapi``, pinned by this
folder's package-lock.json (``npm ci`` in tests/providers/github). It is
OpenAPI 3.0, whose schemas are JSON Schema draft 4 plus a few words of its own;
:func:`json_schema` turns one into plain JSON Schema for ``jsonschema``:

* ``$ref`` pointers into the document are inlined (the package also ships a
  dereferenced file, used when present; the plain one has refs);
* ``nullable: true`` becomes a ``null`` type (or an ``anyOf`` with null);
* annotations that are no constraint (``example``, ``discriminator``, ``x-*``)
  are dropped.

Formats ``date-time`` and ``uri`` are checked too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema  # type: ignore[import-untyped]

__all__ = [
    "NPM_DIR",
    "OpenAPI",
    "SpecOperation",
    "UnlistedStatus",
    "json_schema",
    "spec_file",
]

NPM_DIR = Path(__file__).resolve().parent
_GENERATED = NPM_DIR / "node_modules" / "@octokit" / "openapi" / "generated"
_ANNOTATIONS = frozenset(
    {"nullable", "discriminator", "example", "xml", "externalDocs", "deprecated", "readOnly"}
)
_FORMATS = jsonschema.FormatChecker()


def _date_time(value: object) -> bool:
    if isinstance(value, str):
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


def _uri(value: object) -> bool:
    if isinstance(value, str):
        parts = urlsplit(value)
        return bool(parts.scheme and parts.netloc)
    return True


_FORMATS.checks("date-time", raises=ValueError)(_date_time)
_FORMATS.checks("uri", raises=ValueError)(_uri)


def spec_file(dereferenced: bool = True) -> Path:
    """The api.github.com description; ``FileNotFoundError`` naming the fix when absent."""
    name = "api.github.com.deref.json" if dereferenced else "api.github.com.json"
    path = _GENERATED / name
    if not path.is_file() and dereferenced:
        path = _GENERATED / "api.github.com.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: run `npm ci` in {NPM_DIR} (scripts/setup does it)"
        )
    return path


def _pointer(document: Mapping[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $refs are expected, not {ref!r}")
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _resolve(
    document: Mapping[str, Any], node: Any, seen: tuple[str, ...]
) -> tuple[Any, tuple[str, ...]]:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if ref in seen:
            raise ValueError(f"recursive $ref {ref}")
        seen = (*seen, ref)
        node = _pointer(document, ref)
    return node, seen


def json_schema(document: Mapping[str, Any], node: Any, seen: tuple[str, ...] = ()) -> Any:
    """OpenAPI 3.0 schema ``node`` as plain JSON Schema (see the module docstring)."""
    node, seen = _resolve(document, node, seen)
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _ANNOTATIONS or key.startswith("x-"):
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {k: json_schema(document, v, seen) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = json_schema(document, value, seen)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [json_schema(document, v, seen) for v in value]
        else:
            out[key] = value
    if node.get("nullable") is True:
        kind = out.get("type")
        if kind is None:
            return {"anyOf": [{"type": "null"}, out]}
        out["type"] = [*([kind] if isinstance(kind, str) else kind), "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def _errors(schema: Any, instance: Any, where: str) -> list[str]:
    validator = jsonschema.Draft4Validator(schema, format_checker=_FORMATS)
    found = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [
        f"{where} at /{'/'.join(str(p) for p in e.absolute_path)}: {e.message[:300]}"
        for e in found[:5]
    ]


def _coerce(value: str, schema: Mapping[str, Any]) -> Any:
    """A query or path value as the type its schema says (all arrive as text)."""
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    if "integer" in kinds:
        try:
            return int(value)
        except ValueError:
            return value
    if "boolean" in kinds and value in ("true", "false"):
        return value == "true"
    return value


_ISSUE_PATH = "/repos/{owner}/{repo}/issues/{issue_number}"


class UnlistedStatus(LookupError):
    """The description lists no such status for the operation."""


@dataclass
class SpecOperation:
    """One operation of the description, with its schemas made plain."""

    document: Mapping[str, Any]
    path: str
    method: str
    raw: Mapping[str, Any]
    _schemas: dict[str, Any] = field(default_factory=dict)

    @property
    def operation_id(self) -> str:
        """GitHub's id of the operation, e.g. ``issues/create``."""
        return str(self.raw["operationId"])

    def _schema(self, key: str, node: Any) -> Any:
        if key not in self._schemas:
            self._schemas[key] = json_schema(self.document, node)
        return self._schemas[key]

    def _parameters(self) -> list[Mapping[str, Any]]:
        return [_resolve(self.document, p, ())[0] for p in self.raw.get("parameters", [])]

    def check_request(
        self,
        path_params: Mapping[str, str],
        query: Iterable[tuple[str, str]],
        content_type: str,
        body: bytes,
    ) -> list[str]:
        """What in this request the description does not allow; empty when it fits."""
        where = f"{self.method.upper()} {self.path} request"
        problems: list[str] = []
        given: dict[str, list[str]] = {}
        for key, value in query:
            given.setdefault(key, []).append(value)
        declared = {(p["in"], p["name"]): p for p in self._parameters()}
        for name in given:
            if ("query", name) not in declared:
                problems.append(f"{where}: query parameter {name!r} is not in the description")
        for (place, name), param in declared.items():
            if place == "path":
                values = [path_params[name]] if name in path_params else []
            elif place == "query":
                values = given.get(name, [])
            else:
                continue  # headers and cookies: the tests check those they care about
            if not values:
                if param.get("required"):
                    problems.append(f"{where}: required {place} parameter {name!r} is missing")
                continue
            schema = self._schema(f"param:{place}:{name}", param.get("schema", {}))
            for value in values:
                problems += _errors(schema, _coerce(value, schema), f"{where} {place} {name!r}")
        problems += self._check_body(where, content_type, body)
        return problems

    def request_schema(self) -> Any | None:
        """The plain JSON Schema of the JSON request body; None when the operation takes none."""
        spec = self.raw.get("requestBody")
        if spec is None:
            return None
        spec, _ = _resolve(self.document, spec, ())
        media = spec["content"].get("application/json")
        return None if media is None else self._schema("body", media.get("schema", {}))

    def _check_body(self, where: str, content_type: str, body: bytes) -> list[str]:
        schema = self.request_schema()
        if schema is None:
            return [f"{where}: this operation takes no JSON body"] if body else []
        if not body:
            required = _resolve(self.document, self.raw["requestBody"], ())[0].get("required")
            return [f"{where}: the body is required"] if required else []
        if content_type != "application/json":
            return [f"{where}: content type {content_type!r} is not application/json"]
        try:
            instance = json.loads(body)
        except ValueError:
            return [f"{where}: the body is not JSON"]
        return _errors(schema, instance, f"{where} body")

    def response_schema(self, status: int) -> Any | None:
        """The plain JSON Schema of a ``status`` answer's JSON body; None when it has none.

        :class:`UnlistedStatus` when the description lists no such status.
        """
        responses = self.raw["responses"]
        spec = responses.get(str(status), responses.get("default"))
        if spec is None and status in (401, 404):
            # Every endpoint answers 401 to bad credentials and 404 for what the token
            # cannot see (GitHub's "Troubleshooting" docs); not every one lists them.
            # Their body is GitHub's basic-error, taken from an endpoint that lists it.
            spec = self.document["paths"][_ISSUE_PATH]["get"]["responses"]["404"]
        if spec is None:
            raise UnlistedStatus(status)
        spec, _ = _resolve(self.document, spec, ())
        media = (spec.get("content") or {}).get("application/json")
        if media is None:
            return None
        return self._schema(f"response:{status}", media.get("schema", {}))

    def check_response(self, status: int, content_type: str, body: bytes) -> list[str]:
        """What in this response the description does not allow; empty when it fits."""
        where = f"{self.method.upper()} {self.path} response {status}"
        try:
            schema = self.response_schema(status)
        except UnlistedStatus:
            return [f"{where}: status {status} is not in the description"]
        if schema is None:
            return [f"{where}: the description has no JSON body here"] if body else []
        if content_type != "application/json":
            return [f"{where}: content type {content_type!r} is not described"]
        try:
            instance = json.loads(body)
        except ValueError:
            return [f"{where}: the body is not JSON"]
        return _errors(schema, instance, f"{where} body")


class OpenAPI:
    """The loaded description; operations by path template and method."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self._operations: dict[tuple[str, str], SpecOperation] = {}

    @classmethod
    def load(cls, dereferenced: bool = True) -> OpenAPI:
        """Read the description from the installed npm package."""
        with spec_file(dereferenced).open("rb") as f:
            return cls(json.load(f))

    @property
    def version(self) -> str:
        """The description's version (the package's)."""
        return str(self.document["info"]["version"])

    def operation(self, path: str, method: str) -> SpecOperation:
        """``KeyError`` when GitHub's description has no such operation."""
        key = (path, method.lower())
        if key not in self._operations:
            raw = self.document["paths"][path][method.lower()]
            self._operations[key] = SpecOperation(self.document, path, method.lower(), raw)
        return self._operations[key]
