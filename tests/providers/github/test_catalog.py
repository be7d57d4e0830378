"""The GitHub catalog: which request is which operation, and what each operation is."""

from __future__ import annotations

import re

import pytest

from tests.providers.github.openapi import OpenAPI
from vertex_tools.policy.facts import RiskClass
from vertex_tools.providers import get_catalog
from vertex_tools.providers.github.catalog import CATALOG


def match(method: str, path: str) -> tuple[str, dict[str, str], str | None] | None:
    found = CATALOG.match(method, path[1:].split("/"))
    if found is None:
        return None
    op, params = found
    return op.name, params, op.resource_of(params)


W = {"owner": "acme", "repo": "website"}


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/repos/acme/website/issues/7", ("issues.get", {**W, "issue_number": "7"})),
        ("GET", "/repos/acme/website/issues", ("issues.list", W)),
        ("POST", "/repos/acme/website/issues", ("issues.create", W)),
        ("PATCH", "/repos/acme/website/issues/7", ("issues.update", {**W, "issue_number": "7"})),
        (
            "POST",
            "/repos/acme/website/issues/7/comments",
            ("issues.comment", {**W, "issue_number": "7"}),
        ),
        (
            "GET",
            "/repos/acme/website/issues/7/comments",
            ("issues.list_comments", {**W, "issue_number": "7"}),
        ),
        ("GET", "/repos/acme/website/pulls/3", ("pulls.get", {**W, "pull_number": "3"})),
        ("GET", "/repos/acme/website/pulls", ("pulls.list", W)),
        ("POST", "/repos/acme/website/pulls", ("pulls.create", W)),
        ("PUT", "/repos/acme/website/pulls/3/merge", ("pulls.merge", {**W, "pull_number": "3"})),
        (
            "GET",
            "/repos/acme/website/contents/README.md",
            ("contents.get", {**W, "path": "README.md"}),
        ),
        (
            "PUT",
            "/repos/acme/website/collaborators/hubot",
            ("collaborators.add", {**W, "username": "hubot"}),
        ),
    ],
)
def test_request_to_operation(method: str, path: str, expected: tuple[str, dict[str, str]]) -> None:
    assert match(method, path) == (*expected, "acme/website")


def test_search_has_no_path_resource() -> None:
    assert match("GET", "/search/issues") == ("search.issues", {}, None)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/repos/acme/website/issues/7"),  # not catalogued: refused
        ("PUT", "/repos/acme/website/contents/README.md"),  # writing files
        ("DELETE", "/repos/acme/website/collaborators/hubot"),
        ("GET", "/repos/acme/website"),
        ("GET", "/repos/acme/website/issues/7/events"),
        ("GET", "/repos/acme/website/pulls/3/merge"),
        ("POST", "/search/issues"),
        ("GET", "/search/code"),
        ("GET", "/user"),
        ("GET", "/repos/acme"),
    ],
)
def test_unknown_requests_match_nothing(method: str, path: str) -> None:
    assert match(method, path) is None


def test_contents_path_of_any_depth() -> None:
    assert match("GET", "/repos/acme/website/contents/docs/guide.md") == (
        "contents.get",
        {**W, "path": "docs/guide.md"},
        "acme/website",
    )


def test_the_broker_finds_this_catalog() -> None:
    assert get_catalog("github") is CATALOG
    assert CATALOG.provider == "github"
    assert CATALOG.inject == (("Authorization", "Bearer {secret}"),)
    assert CATALOG.resource_key == "repos"


@pytest.mark.parametrize(
    ("name", "risk"),
    [
        ("issues.get", RiskClass.READ),
        ("issues.list", RiskClass.READ),
        ("issues.list_comments", RiskClass.READ),
        ("pulls.get", RiskClass.READ),
        ("pulls.list", RiskClass.READ),
        ("contents.get", RiskClass.READ),
        ("search.issues", RiskClass.READ),
        ("issues.create", RiskClass.WRITE),
        ("issues.update", RiskClass.WRITE),
        ("issues.comment", RiskClass.WRITE),
        ("pulls.create", RiskClass.WRITE),
        ("pulls.merge", RiskClass.DESTRUCTIVE),
        ("collaborators.add", RiskClass.DESTRUCTIVE),
    ],
)
def test_risk_classes(name: str, risk: RiskClass) -> None:
    op = CATALOG.get(name)
    assert op is not None
    assert op.risk is risk
    assert op.amount is None  # GitHub moves no money: no spend ceiling applies


def test_every_operation_is_one_the_table_names() -> None:
    assert CATALOG.names == sorted(
        [
            "issues.get",
            "issues.list",
            "issues.create",
            "issues.update",
            "issues.comment",
            "issues.list_comments",
            "pulls.get",
            "pulls.list",
            "pulls.create",
            "pulls.merge",
            "contents.get",
            "collaborators.add",
            "search.issues",
        ]
    )


@pytest.mark.parametrize(
    ("name", "control", "content"),
    [
        ("issues.create", {"owner", "repo", "assignees", "labels"}, {"title", "body"}),
        ("issues.update", {"owner", "repo", "issue_number", "state"}, {"title", "body"}),
        ("issues.comment", {"owner", "repo", "issue_number"}, {"body"}),
        ("pulls.create", {"owner", "repo", "head", "base"}, {"title", "body"}),
        # merge_method is one of three fixed words: not a control.
        ("pulls.merge", {"owner", "repo", "pull_number", "sha"}, set()),
        ("collaborators.add", {"owner", "repo", "username", "permission"}, set()),
        ("search.issues", {"q"}, set()),
    ],
)
def test_control_and_content_arguments(name: str, control: set[str], content: set[str]) -> None:
    op = CATALOG.get(name)
    assert op is not None
    assert control <= set(op.control)
    assert content <= set(op.content)
    assert not set(op.control) & set(op.content)
    assert not {"title", "body"} & set(op.control)


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("issues.get", {"title", "body", "user.login", "labels[].name"}),
        ("issues.list", {"[].title", "[].body"}),
        ("issues.list_comments", {"[].body", "[].user.login"}),
        ("pulls.get", {"title", "body", "head.ref"}),
        ("contents.get", {"content", "name", "path", "[].name"}),
        ("search.issues", {"items[].title", "items[].body"}),
    ],
)
def test_untrusted_response_fields(name: str, fields: set[str]) -> None:
    op = CATALOG.get(name)
    assert op is not None
    assert fields <= set(op.untrusted)


def test_every_path_but_search_names_its_repository() -> None:
    for op in CATALOG.operations:
        if op.name == "search.issues":
            assert op.resource is None
        else:
            assert op.resource == "{owner}/{repo}"
            assert op.path.startswith("/repos/{owner}/{repo}/")


def test_every_operation_is_in_githubs_description(spec: OpenAPI) -> None:
    """The catalog's method and path template are GitHub's own, letter for letter
    (our ``{path+}`` is GitHub's ``{path}`` marked x-multi-segment)."""
    for op in CATALOG.operations:
        github_path = op.path.replace("+}", "}")
        assert op.method.lower() in spec.document["paths"][github_path], op.name


@pytest.mark.parametrize(
    ("resource", "valid"),
    [
        ("acme/website", True),
        ("acme/*", True),
        ("octo-org/octo.repo_2", True),
        ("acme/.github", True),
        ("acme", False),
        ("acme/", False),
        ("/website", False),
        ("acme/.", False),
        ("acme/..", False),
        ("-acme/website", False),
        ("acme/web site", False),
        ("acme/website/extra", False),
        ("*/*", False),
        ("acme/web*", False),
    ],
)
def test_resource_pattern(resource: str, valid: bool) -> None:
    assert CATALOG.resource_pattern is not None
    assert bool(re.fullmatch(CATALOG.resource_pattern, resource)) is valid


@pytest.mark.parametrize(
    ("resource", "allowed", "expected"),
    [
        ("acme/website", ("acme/website",), True),
        ("acme/api", ("acme/website",), False),
        ("acme/api", ("acme/*",), True),
        ("other/secret", ("acme/*",), False),
        ("acme-corp/website", ("acme/*",), False),
        ("ACME/website", ("acme/website",), False),  # fail closed: no case folding
    ],
)
def test_resource_allowed(resource: str, allowed: tuple[str, ...], expected: bool) -> None:
    assert CATALOG.resource_allowed(resource, allowed) is expected
