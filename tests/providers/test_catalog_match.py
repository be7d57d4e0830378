"""Catalog.match picks what trying every operation in turn picks (its first version).

The catalog indexes operations by method and segment count and works out each
template's parts once; this holds it to the plain definition on every catalog.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vertex_tools.providers import CATALOG_PROVIDERS, get_catalog
from vertex_tools.providers.catalog import Catalog, Operation, PathTemplate

_PARAM = re.compile(r"^\{([a-z_][a-z0-9_]*)\}\Z")
_REST = re.compile(r"^\{([a-z_][a-z0-9_]*)\+\}\Z")


def reference_template_match(template: PathTemplate, segments: list[str]) -> dict[str, str] | None:
    rest = _REST.match(template.segments[-1]) if template.segments else None
    fixed = template.segments[:-1] if rest else template.segments
    if rest is None and len(segments) != len(fixed):
        return None
    if rest is not None and len(segments) <= len(fixed):
        return None
    params: dict[str, str] = {}
    if rest is not None:
        params[rest.group(1)] = "/".join(segments[len(fixed) :])
    for pattern, segment in zip(fixed, segments[: len(fixed)], strict=True):
        param = _PARAM.match(pattern)
        if param is not None:
            params[param.group(1)] = segment
        elif pattern != segment:
            return None
    return params


def literal_count(template: PathTemplate) -> int:
    return sum(1 for s in template.segments if not (_PARAM.match(s) or _REST.match(s)))


def reference_match(
    catalog: Catalog, method: str, segments: list[str]
) -> tuple[Operation, dict[str, str]] | None:
    best: tuple[Operation, dict[str, str]] | None = None
    for op in catalog.operations:
        if op.method != method:
            continue
        params = reference_template_match(op.template, segments)
        if params is None:
            continue
        if best is None or literal_count(op.template) > literal_count(best[0].template):
            best = (op, params)
    return best


CATALOGS = [get_catalog(name) for name in CATALOG_PROVIDERS]
# Every literal segment any catalog uses, and values a parameter could take.
WORDS = sorted(
    {s for c in CATALOGS for op in c.operations for s in op.template.segments if "{" not in s}
    | {"x", "cus_1", "acme", "a.b", "{owner}"}
)
METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "get", "BREW"]


@pytest.mark.parametrize("catalog", CATALOGS, ids=CATALOG_PROVIDERS)
@given(
    method=st.sampled_from(METHODS),
    segments=st.lists(st.sampled_from(WORDS), max_size=9),
)
def test_match_is_the_first_versions_match(
    catalog: Catalog, method: str, segments: list[str]
) -> None:
    assert catalog.match(method, segments) == reference_match(catalog, method, segments)


@pytest.mark.parametrize("catalog", CATALOGS, ids=CATALOG_PROVIDERS)
def test_every_operation_matches_its_own_template(catalog: Catalog) -> None:
    for op in catalog.operations:
        segments = [
            "v" if _PARAM.match(s) else ("a/b" if _REST.match(s) else s)
            for s in op.template.segments
        ]
        segments = "/".join(segments).split("/")
        assert catalog.match(op.method, segments) == reference_match(catalog, op.method, segments)
        assert literal_count(op.template) == op.template.literal_count


def test_unknown_methods_are_not_remembered() -> None:
    catalog = get_catalog("stripe")
    before = len(catalog._candidates)
    for n in range(50):
        assert catalog.match(f"M{n}", ["v1", "refunds"]) is None
    assert len(catalog._candidates) == before
