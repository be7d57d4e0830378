"""Load policy.toml: parse, validate, cross-check, and report problems by line.

``tomllib`` gives no positions for values, so :func:`_locate` finds the line
of a key path by scanning table headers and ``key =`` lines. That is enough to
point an operator at the right line; it never affects what is accepted.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
from pydantic import ValidationError

from vertex_tools.errors import ConfigError, PolicyError
from vertex_tools.policy.models import SUPPORTED_VERSIONS, Grant, Policy

__all__ = ["LoadedPolicy", "load_policy", "parse_policy"]

_TOML_POSITION = re.compile(r"\(at line (\d+), column \d+\)")
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+)\s*=")


@dataclass(frozen=True, slots=True)
class LoadedPolicy:
    """A validated policy with where it came from and its BLAKE3 digest (for the audit log)."""

    policy: Policy
    path: str
    digest: str


def load_policy(path: Path) -> LoadedPolicy:
    """Read and validate a policy file; raise :class:`PolicyError` listing every problem."""
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise PolicyError(
            str(path), [("", None, f"cannot read policy file: {exc.strerror}")]
        ) from exc
    return parse_policy(source, str(path))


def parse_policy(source: bytes, path: str = "<policy>") -> LoadedPolicy:
    """Validate policy bytes; ``path`` is only used in messages."""
    try:
        text = source.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(path, [("", None, "policy file is not UTF-8")]) from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POSITION.search(str(exc))
        line = int(match.group(1)) if match else None
        message = _TOML_POSITION.sub("", str(exc)).strip()
        raise PolicyError(path, [("", line, f"TOML syntax error: {message}")]) from exc
    except (ValueError, RecursionError) as exc:  # huge integers, pathological nesting
        raise PolicyError(
            path, [("", None, "TOML the parser cannot read (too deep or too large)")]
        ) from exc

    lines = text.splitlines()
    version = raw.get("version")
    if "version" not in raw:
        raise PolicyError(
            path, [("version", None, "missing; the first line should be version = 1")]
        )
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
        raise PolicyError(
            path,
            [
                (
                    "version",
                    _locate(lines, ("version",)),
                    f"unknown policy version {version!r}; this broker understands {supported}",
                )
            ],
        )
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(path, _problems(exc, lines, raw)) from exc

    problems = _cross_check(policy, lines)
    if problems:
        raise PolicyError(path, problems)
    return LoadedPolicy(policy=policy, path=path, digest=blake3.blake3(source).hexdigest())


def _problems(
    exc: ValidationError, lines: list[str], raw: dict[str, Any]
) -> list[tuple[str, int | None, str]]:
    problems: list[tuple[str, int | None, str]] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        # Pydantic appends the union member or validator name to the location
        # (``rate.str``, ``rate.function-before[...]``); keep only real keys.
        keys = _trim(
            raw, tuple(part for part in loc if isinstance(part, int) or "[" not in str(part))
        )
        key = _dotted(keys)
        message = str(error["msg"])
        if error["type"] == "extra_forbidden":
            message = (
                "unknown key (check the spelling; see the commented policy.toml from vertex init)"
            )
        elif error["type"] == "missing":
            message = "required key is missing"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        problems.append((key, _locate(lines, keys), message))
    return problems


def _cross_check(policy: Policy, lines: list[str]) -> list[tuple[str, int | None, str]]:
    from vertex_tools.broker.netguard import AddressPolicy
    from vertex_tools.errors import UpstreamBlocked

    problems: list[tuple[str, int | None, str]] = []
    for name, grant in policy.grants.items():
        if grant.upstream not in policy.upstreams:
            known = ", ".join(sorted(policy.upstreams))
            problems.append(
                (
                    f"grants.{name}.upstream",
                    _locate(lines, ("grants", name, "upstream")),
                    f"names {grant.upstream!r}, which is not an upstream (defined: {known})",
                )
            )
            continue
        provider = policy.upstreams[grant.upstream].provider
        for key, message in _grant_problems(grant, provider):
            problems.append(
                (f"grants.{name}.{key}", _locate(lines, ("grants", name, key)), message)
            )
    try:
        addresses = AddressPolicy(policy.settings.allow_private_upstreams)
    except ConfigError as exc:
        problems.append(("settings.allow_private_upstreams", None, str(exc)))
        return problems
    for name, upstream in policy.upstreams.items():
        host = upstream.url.host
        try:
            ipaddress.ip_address(host)
        except ValueError:
            continue  # a name: checked when it is resolved, at connect time
        try:
            addresses.check(host)
        except UpstreamBlocked as exc:
            problems.append(
                (
                    f"upstreams.{name}.base_url",
                    _locate(lines, ("upstreams", name, "base_url")),
                    str(exc),
                )
            )
    return problems


def _trim(raw: Any, keys: tuple[Any, ...]) -> tuple[Any, ...]:
    """Cut a location to what the file really contains (``rate = "5/s"`` is a shorthand
    that validation expands into ``rate.per_token``; the operator wrote ``rate``)."""
    node = raw
    for depth, key in enumerate(keys):
        in_dict = isinstance(node, dict) and key in node
        in_list = isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node)
        if in_dict or in_list:
            node = node[key]
        elif isinstance(node, dict | list):
            return keys  # a missing key: the location names what should be there
        else:
            return keys[:depth]
    return keys


def _grant_problems(grant: Grant, provider: str) -> list[tuple[str, str]]:
    """What is wrong with a grant given its upstream's provider, as (key, message)."""
    if provider == "http":
        out = [
            (key, f"is for catalog providers; {provider!r} upstreams use allow rules")
            for key in ("operations", "repos", "tables")
            if getattr(grant, key) is not None
        ]
        if grant.allow is None:
            out.append(("allow", "an http upstream's grant needs allow rules"))
        return out
    from vertex_tools.providers import get_catalog

    try:
        catalog = get_catalog(provider)
    except ConfigError as exc:
        return [("upstream", str(exc))]
    out = []
    if grant.allow is not None:
        out.append(("allow", f"{provider} grants name operations, not allow rules"))
    if grant.operations is None:
        out.append(("operations", f"required: the {provider} operations this grant may use"))
        return out
    for index, op_name in enumerate(grant.operations):
        op = catalog.get(op_name)
        if op is None:
            out.append(
                (
                    "operations",
                    f"[{index}] {op_name!r} is not a {provider} operation "
                    f"(known: {', '.join(catalog.names)})",
                )
            )
        elif op.amount is not None and grant.spend is None:
            out.append(("operations", f"{op_name} moves money: the grant needs a spend ceiling"))
    for key in ("repos", "tables"):
        if getattr(grant, key) is not None and key != catalog.resource_key:
            out.append((key, f"{provider} grants have no {key}"))
    if catalog.resource_key is not None:
        resources = getattr(grant, catalog.resource_key)
        needs = any(
            (op := catalog.get(n)) is not None and (op.resource is not None or op.scoped)
            for n in grant.operations
        )
        if needs and resources is None:
            out.append(
                (
                    catalog.resource_key,
                    f"required: the {catalog.resource_key} the grant's operations may touch",
                )
            )
        pattern = re.compile(catalog.resource_pattern or ".*")
        for entry in resources or ():
            if not pattern.fullmatch(entry):
                out.append((catalog.resource_key, f"{entry!r} is not a valid {provider} resource"))
    return out


def _dotted(keys: tuple[Any, ...]) -> str:
    out = ""
    for part in keys:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unquote(key: str) -> str:
    key = key.strip()
    if len(key) >= 2 and key[0] == key[-1] and key[0] in "\"'":
        return key[1:-1]
    return key


def _split_header(header: str) -> tuple[str, ...]:
    parts = re.findall(r"\"[^\"]*\"|'[^']*'|[^.]+", header)
    return tuple(_unquote(p) for p in parts if p.strip())


def _locate(lines: list[str], keys: tuple[Any, ...]) -> int | None:
    """Best-effort line number (1-based) of a key path such as ("grants", "x", "rate")."""
    names = tuple(str(k) for k in keys if not isinstance(k, int))
    if not names:
        return None
    best_line: int | None = None
    best_depth = -1
    table: tuple[str, ...] = ()
    for number, line in enumerate(lines, start=1):
        header = _HEADER.match(line)
        if header:
            table = _split_header(header.group(1))
            depth = len(table)
            if names[:depth] == table and depth > best_depth:
                best_line, best_depth = number, depth
            continue
        key = _KEY.match(line)
        if key is None:
            continue
        full = (*table, _unquote(key.group(1)))
        depth = len(full)
        if names[:depth] == full and depth > best_depth:
            best_line, best_depth = number, depth
    return best_line
