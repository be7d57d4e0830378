"""The GitHub tools on their own: what request each builds, what the model sees of
them, and that the token is nowhere in it."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from tests.providers.github.standard_examples import EXAMPLES
from vertex_tools.client import BrokerClient
from vertex_tools.providers.github.catalog import CATALOG
from vertex_tools.providers.github.toolkit import (
    API_VERSION,
    GetFileTool,
    GitHubTool,
    GitHubToolkit,
    SearchIssuesTool,
)
from vertex_tools.tokens import mint_token

TOKEN = mint_token("maintainer", now=time.time(), ttl=3600).token
SECRET_PART = TOKEN.rsplit(".", 1)[-1]


def schema_of(tool: GitHubTool, for_calls: bool = False) -> dict[str, Any]:
    """The JSON Schema the model is shown (``tool_call_schema``) or the input schema."""
    schema = tool.tool_call_schema if for_calls else tool.get_input_schema()
    assert isinstance(schema, type) and issubclass(schema, BaseModel)
    return schema.model_json_schema()


@pytest.fixture(scope="module")
def client() -> Iterator[BrokerClient]:
    with BrokerClient("http://127.0.0.1:9", token=TOKEN) as c:
        yield c


@pytest.fixture(scope="module")
def tools(client: BrokerClient) -> dict[str, GitHubTool]:
    out = {}
    for tool in GitHubToolkit(client=client).get_tools():
        assert isinstance(tool, GitHubTool)
        out[tool.name] = tool
    return out


def test_one_tool_per_catalog_operation(tools: dict[str, GitHubTool]) -> None:
    assert sorted(t.operation for t in tools.values()) == CATALOG.names
    assert set(tools) == set(EXAMPLES)
    assert all(t.upstream == "github" for t in tools.values())


def test_the_upstream_name_can_be_changed(client: BrokerClient) -> None:
    tools = GitHubToolkit(client=client, upstream="gh-prod").get_tools()
    assert {t.upstream for t in tools if isinstance(t, GitHubTool)} == {"gh-prod"}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_tool_calls_the_operation_it_names(tools: dict[str, GitHubTool], name: str) -> None:
    """The request a tool builds is the catalog operation the tool claims, with GitHub's
    headers, so the broker sees the operation the model was told about."""
    tool = tools[name]
    request = tool.build_request(**EXAMPLES[name])
    found = CATALOG.match(request.method, request.path[1:].split("/"))
    assert found is not None, request
    assert found[0].name == tool.operation
    assert request.headers == {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
    }
    assert request.data is None
    if request.method == "GET":
        assert request.json is None
    else:
        assert isinstance(request.json, dict)


@pytest.mark.parametrize(
    ("name", "args", "method", "path", "params", "body"),
    [
        (
            "github_list_issues",
            {"repo": "acme/website", "labels": ["bug", "ui"], "per_page": 5},
            "GET",
            "/repos/acme/website/issues",
            {"state": "open", "labels": "bug,ui", "per_page": 5},
            None,
        ),
        (
            "github_create_issue",
            {"repo": "acme/website", "title": "T", "assignees": ["octocat"]},
            "POST",
            "/repos/acme/website/issues",
            {},
            {"title": "T", "assignees": ["octocat"]},
        ),
        (
            "github_update_issue",
            {"repo": "acme/website", "issue_number": 2, "state": "closed", "labels": []},
            "PATCH",
            "/repos/acme/website/issues/2",
            {},
            {"state": "closed", "labels": []},
        ),
        (
            "github_merge_pull_request",
            {"repo": "acme/website", "pull_number": 3},
            "PUT",
            "/repos/acme/website/pulls/3/merge",
            {},
            {"merge_method": "merge"},
        ),
        (
            "github_get_file",
            {"repo": "acme/website", "path": "/docs/my guide.md", "ref": "v1.0"},
            "GET",
            "/repos/acme/website/contents/docs/my%20guide.md",
            {"ref": "v1.0"},
            None,
        ),
        (
            "github_add_collaborator",
            {"repo": "acme/website", "username": "hubot"},
            "PUT",
            "/repos/acme/website/collaborators/hubot",
            {},
            {"permission": "push"},
        ),
        (
            "github_search_issues",
            {"query": " crash is:open ", "repos": ["acme/website", "acme/api"]},
            "GET",
            "/search/issues",
            {"q": "crash is:open repo:acme/website repo:acme/api"},
            None,
        ),
    ],
)
def test_requests(
    tools: dict[str, GitHubTool],
    name: str,
    args: dict[str, Any],
    method: str,
    path: str,
    params: dict[str, Any],
    body: Any,
) -> None:
    request = tools[name].build_request(**args)
    assert (request.method, request.path, request.params, request.json) == (
        method,
        path,
        params,
        body,
    )


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("github_get_issue", {"repo": "acme", "issue_number": 1}),
        ("github_get_issue", {"repo": "acme/website/x", "issue_number": 1}),
        ("github_get_issue", {"repo": "acme/..", "issue_number": 1}),
        ("github_get_issue", {"repo": "../acme", "issue_number": 1}),
        ("github_get_issue", {"repo": "acme/website", "issue_number": 0}),
        ("github_get_issue", {"repo": "acme/website", "issue_number": 1, "extra": 1}),
        ("github_get_file", {"repo": "acme/website", "path": "docs/../secrets"}),
        ("github_get_file", {"repo": "acme/website", "path": "//"}),
        ("github_add_collaborator", {"repo": "acme/website", "username": "a/b"}),
        ("github_add_collaborator", {"repo": "acme/website", "username": "x", "permission": "own"}),
        ("github_merge_pull_request", {"repo": "acme/website", "pull_number": 1, "sha": "abc"}),
        ("github_search_issues", {"query": "", "repos": ["acme/website"]}),
    ],
)
def test_arguments_the_schema_refuses(
    tools: dict[str, GitHubTool], name: str, args: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        tools[name].build_request(**args)


def test_the_token_is_in_nothing_the_model_or_a_trace_sees(
    client: BrokerClient, tools: dict[str, GitHubTool]
) -> None:
    toolkit = GitHubToolkit(client=client)
    seen = [repr(toolkit), str(toolkit), toolkit.model_dump_json(), str(toolkit.model_dump())]
    for tool in tools.values():
        seen += [
            repr(tool),
            str(tool),
            str(tool.model_dump()),
            tool.model_dump_json(),
            json.dumps(tool.args),
            json.dumps(schema_of(tool, for_calls=True)),
            json.dumps(schema_of(tool)),
            tool.description,
        ]
    text = "\n".join(seen)
    assert TOKEN not in text
    assert SECRET_PART not in text
    dumped = [json.loads(t.model_dump_json()) for t in tools.values()]
    assert all("client" not in d for d in dumped)
    assert dumped[0]["args_schema"] == "IssueArgs"


def test_answers_are_slimmed_for_the_model(tools: dict[str, GitHubTool]) -> None:
    user = {"login": "hubot", "id": 1, "avatar_url": "https://x/a.png", "url": "https://x"}
    issue = {
        "url": "https://api.github.com/repos/acme/website/issues/1",
        "html_url": "https://github.com/acme/website/issues/1",
        "comments_url": "https://api.github.com/repos/acme/website/issues/1/comments",
        "node_id": "I_1",
        "number": 1,
        "title": "Crash",
        "user": user,
        "assignees": [user],
        "reactions": {"+1": 3},
    }
    out = json.loads(tools["github_get_issue"].format_response(200, issue))
    assert out == {
        "html_url": "https://github.com/acme/website/issues/1",
        "number": 1,
        "title": "Crash",
        "user": "hubot",
        "assignees": ["hubot"],
    }


def test_errors_are_shown_whole(tools: dict[str, GitHubTool]) -> None:
    answer = {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
    text = tools["github_get_issue"].format_response(404, answer)
    assert text.startswith("The API answered 404: ")
    assert "documentation_url" in text


def test_files_are_decoded(tools: dict[str, GitHubTool]) -> None:
    tool = tools["github_get_file"]
    assert isinstance(tool, GetFileTool)
    encoded = base64.b64encode("# Héllo\n".encode()).decode()
    answer = {"type": "file", "encoding": "base64", "content": encoded[:4] + "\n" + encoded[4:]}
    assert json.loads(tool.format_response(200, answer)) == {"type": "file", "content": "# Héllo\n"}
    binary = {"type": "file", "encoding": "base64", "size": 3, "content": "//79"}
    assert json.loads(tool.format_response(200, binary))["content"] == "[binary file of 3 bytes]"


def test_an_existing_collaborator_is_said_in_words(tools: dict[str, GitHubTool]) -> None:
    text = tools["github_add_collaborator"].format_response(204, "")
    assert json.loads(text) == {"status": "already a collaborator; nothing changed"}


def test_search_description_tells_the_model_to_name_repositories(
    tools: dict[str, GitHubTool],
) -> None:
    tool = tools["github_search_issues"]
    assert isinstance(tool, SearchIssuesTool)
    schema = schema_of(tool)
    assert "repo:owner/name" in schema["properties"]["query"]["description"]
    assert "repo:owner/name" in tool.description
