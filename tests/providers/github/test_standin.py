"""The stand-in and its OpenAPI checker, tested on their own: a checker that finds
nothing wrong with anything would make every other GitHub test meaningless."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest

from tests.providers.github import shapes
from tests.providers.github.conftest import TOKEN
from tests.providers.github.openapi import NPM_DIR, OpenAPI, json_schema
from tests.providers.github.routes import ROUTES
from tests.providers.github.standin import GitHubStandIn

ISSUES = "/repos/{owner}/{repo}/issues"
W = {"owner": "acme", "repo": "website"}


def get(standin: GitHubStandIn, path: str, authorization: str | None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return httpx.get(standin.url + path, headers=headers, trust_env=False)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer gh_test_wrong",
        f"Bearer {TOKEN}x",
        f"Basic {TOKEN}",
        TOKEN,
        f"bearer  {TOKEN}",
    ],
)
def test_anything_but_the_token_gets_githubs_401(
    standin: GitHubStandIn, authorization: str | None
) -> None:
    response = get(standin, "/repos/acme/website/issues/1", authorization)
    assert response.status_code == 401
    assert response.json() == {
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest",
        "status": "401",
    }


@pytest.mark.parametrize("scheme", ["Bearer", "token"])
def test_the_token_opens_it_in_both_schemes_github_reads(
    standin: GitHubStandIn, scheme: str
) -> None:
    response = get(standin, "/repos/acme/website/issues/1", f"{scheme} {TOKEN}")
    assert response.status_code == 200
    assert response.json()["title"] == "Login page crashes on Safari"


def test_a_request_githubs_description_refuses_is_recorded(standin: GitHubStandIn) -> None:
    response = httpx.post(
        standin.url + "/repos/acme/website/issues",
        json={"body": "no title"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        trust_env=False,
    )
    assert response.status_code == 422
    assert response.json()["message"] == "Validation Failed"
    found = standin.take_violations()
    assert found == [
        "POST /repos/{owner}/{repo}/issues request body at /: 'title' is a required property"
    ]


def test_an_unserved_route_is_recorded(standin: GitHubStandIn) -> None:
    response = get(standin, "/repos/acme/website/hooks", f"Bearer {TOKEN}")
    assert response.status_code == 404
    assert response.json()["message"] == "Not Found"
    assert standin.take_violations() == [
        "GET /repos/acme/website/hooks: the stand-in serves no such route"
    ]


def test_every_route_is_an_operation_of_githubs_description(spec: OpenAPI) -> None:
    ids = {spec.operation(path, method).operation_id for method, path, _ in ROUTES}
    assert ids == {
        "issues/list-for-repo",
        "issues/create",
        "issues/get",
        "issues/update",
        "issues/list-comments",
        "issues/create-comment",
        "pulls/list",
        "pulls/create",
        "pulls/get",
        "pulls/merge",
        "repos/get-content",
        "repos/add-collaborator",
        "search/issues-and-pull-requests",
    }


def a_valid_issue(standin: GitHubStandIn) -> dict[str, Any]:
    repo = standin.repos["acme/website"]
    issue = repo.issues[1]
    return shapes.issue("acme/website", issue, standin.users[issue.author], [])


def test_the_checker_accepts_githubs_issue_and_refuses_broken_ones(
    spec: OpenAPI, standin: GitHubStandIn
) -> None:
    op = spec.operation(ISSUES + "/{issue_number}", "get")
    valid = a_valid_issue(standin)
    assert op.check_response(200, "application/json", json.dumps(valid).encode()) == []
    broken: list[tuple[str, Any]] = [
        ("number", None),  # required, not nullable
        ("state", 1),
        ("created_at", "yesterday"),  # a date-time
        ("html_url", "not a url"),  # a uri
    ]
    for name, value in broken:
        bad = copy.deepcopy(valid)
        bad[name] = value
        problems = op.check_response(200, "application/json", json.dumps(bad).encode())
        assert problems and f"at /{name}:" in problems[0], (name, problems)
    bad = {k: v for k, v in valid.items() if k != "user"}
    problems = op.check_response(200, "application/json", json.dumps(bad).encode())
    assert problems == [
        "GET /repos/{owner}/{repo}/issues/{issue_number} response 200 body at /: "
        "'user' is a required property"
    ]
    assert op.check_response(200, "text/plain", b"{}") != []
    assert op.check_response(418, "application/json", b"{}") != []


def test_the_checker_reads_parameters(spec: OpenAPI) -> None:
    op = spec.operation(ISSUES, "get")
    assert op.check_request(W, [("state", "all"), ("per_page", "5")], "", b"") == []
    assert op.check_request(W, [("state", "sideways")], "", b"")
    assert op.check_request(W, [("per_page", "many")], "", b"")
    assert op.check_request(W, [("invented", "1")], "", b"")
    assert op.check_request({"owner": "acme"}, [], "", b"")  # repo is required
    assert op.check_request(W, [], "application/json", b"{}")  # a GET takes no body


def test_nullable_is_read_as_openapi_means_it(spec: OpenAPI) -> None:
    schema = json_schema(spec.document, {"type": "string", "nullable": True, "enum": ["a"]})
    assert schema == {"type": ["string", "null"], "enum": ["a", None]}
    schema = json_schema(spec.document, {"oneOf": [{"type": "string"}], "nullable": True})
    assert schema == {"anyOf": [{"type": "null"}, {"oneOf": [{"type": "string"}]}]}


def test_refs_resolve_to_the_same_schemas_as_the_dereferenced_file(spec: OpenAPI) -> None:
    """The package ships both files; the plain one's $refs, inlined, give the same schemas."""
    plain = OpenAPI.load(dereferenced=False)
    assert "$ref" in json.dumps(plain.document["paths"][ISSUES]["post"])
    assert "$ref" not in json.dumps(spec.document["paths"][ISSUES]["post"])
    for method, path, _ in ROUTES:
        ours, theirs = spec.operation(path, method), plain.operation(path, method)
        for status in ours.raw["responses"]:
            code = int(status)
            assert ours.response_schema(code) == theirs.response_schema(code), (path, status)
        assert ours.request_schema() == theirs.request_schema(), path


def test_the_installed_description_is_the_locked_one(spec: OpenAPI) -> None:
    """node_modules left over from an older lock would check against another API."""
    lock = json.loads((NPM_DIR / "package-lock.json").read_text("utf-8"))
    locked = lock["packages"]["node_modules/@octokit/openapi"]["version"]
    package = NPM_DIR / "node_modules" / "@octokit" / "openapi" / "package.json"
    assert json.loads(package.read_text("utf-8"))["version"] == locked
    assert spec.version == locked
