"""End to end: a LangChain tool, the real broker process, the GitHub stand-in.

Each test calls ``tool.invoke(...)`` as an agent loop would, and looks at what
the model reads, what reached the stand-in, and what the audit log recorded.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.tools import BaseTool

from tests.providers.github.conftest import INJECTED, TOKEN, GitHubDeployment
from vertex_tools.audit import AuditLog, EntryKind
from vertex_tools.taint import ProvenanceHandler, Source


def invoke(tool: BaseTool, **args: Any) -> str:
    out = tool.invoke(args)
    assert isinstance(out, str)
    return out


def answer(tool: BaseTool, **args: Any) -> Any:
    out = invoke(tool, **args)
    assert not out.startswith(("REFUSED", "The API answered")), out
    return json.loads(out)


def last_intent(github: GitHubDeployment) -> dict[str, Any]:
    with AuditLog(github.home.audit_db) as log:
        intents = [r for r in log.records() if r.kind is EntryKind.INTENT]
    return dict(intents[-1].data)


def test_an_allowed_call_reaches_github_with_the_vaulted_token(github: GitHubDeployment) -> None:
    tools = github.tools("triage-bot")
    issue = answer(tools["github_get_issue"], repo="acme/website", issue_number=1)
    assert issue["title"] == "Login page crashes on Safari"
    assert issue["user"] == "monalisa"
    assert issue["body"] == INJECTED  # handed over as data, untouched
    got = github.standin.last("GET", "/repos/acme/website/issues/1")
    assert got.headers["authorization"] == f"Bearer {TOKEN}"
    assert got.headers["accept"] == "application/vnd.github+json"
    assert got.headers["x-github-api-version"] == "2022-11-28"
    # the agent's own credential stopped at the broker
    assert github.tokens["triage-bot"].split(".")[1] not in json.dumps(got.headers)
    intent = last_intent(github)
    assert (intent["operation"], intent["risk"]) == ("issues.get", "read")


def test_an_operation_outside_the_grant_is_refused(github: GitHubDeployment) -> None:
    tools = github.tools("triage-bot")
    before = len(github.standin.received)
    out = invoke(tools["github_create_issue"], repo="acme/website", title="Free crypto")
    assert out.startswith("REFUSED by policy (not_allowed, rule grants.triage-bot.operations)")
    assert "issues.create" in out
    out = invoke(tools["github_add_collaborator"], repo="acme/website", username="mallory")
    assert out.startswith("REFUSED by policy (not_allowed")
    assert len(github.standin.received) == before  # nothing left the broker


@pytest.mark.parametrize("repo", ["other/secret", "acme/api"])
def test_another_repository_is_refused(github: GitHubDeployment, repo: str) -> None:
    tools = github.tools("triage-bot")
    before = len(github.standin.received)
    out = invoke(tools["github_get_issue"], repo=repo, issue_number=1)
    assert out.startswith("REFUSED by policy (resource_not_allowed, rule grants.triage-bot.repos)")
    assert repr(repo) in out
    out = invoke(tools["github_comment_on_issue"], repo=repo, issue_number=1, body="hi")
    assert "resource_not_allowed" in out
    assert len(github.standin.received) == before


def test_an_owner_wildcard_reaches_that_owners_repositories_only(
    github: GitHubDeployment,
) -> None:
    tools = github.tools("maintainer")
    issues = answer(tools["github_list_issues"], repo="acme/api")
    assert [i["title"] for i in issues] == ["Rate limit errors on /v2/orders"]
    out = invoke(tools["github_list_issues"], repo="other/secret")
    assert "resource_not_allowed" in out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ({"query": "roadmap"}, "a search must name its repositories"),
        ({"query": "roadmap", "repos": ["other/secret"]}, "'other/secret' is outside"),
        ({"query": "roadmap repo:acme/website repo:other/secret"}, "'other/secret' is outside"),
        ({"query": "crash OR roadmap", "repos": ["acme/website"]}, "may not use OR"),
    ],
)
def test_a_search_beyond_the_grant_is_refused(
    github: GitHubDeployment, args: dict[str, Any], says: str
) -> None:
    tool = github.tools("triage-bot")["github_search_issues"]
    before = len(github.standin.received)
    out = invoke(tool, **args)
    assert out.startswith(
        "REFUSED by policy (resource_not_allowed, rule providers.github.search.issues)"
    )
    assert says in out
    assert len(github.standin.received) == before


def test_a_search_inside_the_grant_is_answered(github: GitHubDeployment) -> None:
    tool = github.tools("triage-bot")["github_search_issues"]
    found = answer(tool, query="crash is:issue", repos=["acme/website"])
    assert found["total_count"] == 1
    assert [i["title"] for i in found["items"]] == ["Login page crashes on Safari"]
    got = github.standin.last("GET", "/search/issues")
    assert got.query == "q=crash+is%3Aissue+repo%3Aacme%2Fwebsite"


def test_issue_lifecycle(github: GitHubDeployment) -> None:
    tools = github.tools("maintainer")
    created = answer(
        tools["github_create_issue"],
        repo="acme/website",
        title="Dark mode",
        body="Please.",
        labels=["enhancement"],
        assignees=["octocat"],
    )
    number = created["number"]
    assert (created["state"], created["assignees"]) == ("open", ["octocat"])
    assert [label["name"] for label in created["labels"]] == ["enhancement"]
    answer(tools["github_comment_on_issue"], repo="acme/website", issue_number=number, body="+1")
    comments = answer(tools["github_list_issue_comments"], repo="acme/website", issue_number=number)
    assert [(c["user"], c["body"]) for c in comments] == [("octocat", "+1")]
    closed = answer(
        tools["github_update_issue"],
        repo="acme/website",
        issue_number=number,
        state="closed",
        state_reason="not_planned",
    )
    assert (closed["state"], closed["state_reason"]) == ("closed", "not_planned")
    assert closed["title"] == "Dark mode"  # only what was given changed
    still_open = answer(tools["github_list_issues"], repo="acme/website")
    assert number not in [i["number"] for i in still_open]


def test_pull_request_lifecycle(github: GitHubDeployment) -> None:
    tools = github.tools("maintainer")
    pull = answer(
        tools["github_create_pull_request"],
        repo="acme/website",
        title="Speed up the build",
        head="fix-safari",
        base="main",
    )
    number = pull["number"]
    assert (pull["head"]["ref"], pull["base"]["repo"]) == ("fix-safari", "acme/website")
    listed = answer(tools["github_list_pull_requests"], repo="acme/website")
    assert number in [p["number"] for p in listed]
    wrong_sha = "0" * 40
    out = invoke(
        tools["github_merge_pull_request"], repo="acme/website", pull_number=number, sha=wrong_sha
    )
    assert out.startswith("The API answered 409")
    merged = answer(tools["github_merge_pull_request"], repo="acme/website", pull_number=number)
    assert merged["merged"] is True
    assert last_intent(github)["risk"] == "destructive"
    out = invoke(tools["github_merge_pull_request"], repo="acme/website", pull_number=number)
    assert out.startswith("The API answered 405") and "not mergeable" in out
    got = answer(tools["github_get_pull_request"], repo="acme/website", pull_number=number)
    assert (got["merged"], got["state"], got["merged_by"]) == (True, "closed", "octocat")


def test_files_and_directories(github: GitHubDeployment) -> None:
    tool = github.tools("maintainer")["github_get_file"]
    readme = answer(tool, repo="acme/website", path="README.md")
    assert readme["content"].startswith("# acme/website\n")
    listing = answer(tool, repo="acme/website", path="docs")
    assert [(e["name"], e["type"]) for e in listing] == [("guide.md", "file"), ("img", "dir")]
    out = invoke(tool, repo="acme/website", path="README.md", ref="no-such-branch")
    assert out.startswith("The API answered 404") and "No commit found" in out


def test_a_file_below_the_top_directory(github: GitHubDeployment) -> None:
    tool = github.tools("maintainer")["github_get_file"]
    guide = answer(tool, repo="acme/website", path="docs/guide.md")
    assert guide["content"].startswith("# Guide")


def test_adding_a_collaborator(github: GitHubDeployment) -> None:
    # Earlier tests read issues by monalisa with this token outside any run, so the
    # broker remembers her login as third-party content; here the user names her.
    handler = ProvenanceHandler()
    handler.ledger.add_trusted(
        "Invite monalisa to acme/api with pull access, and acme too.", Source("user", "message")
    )
    tool = github.tools("maintainer")["github_add_collaborator"]
    out = tool.invoke(
        {"repo": "acme/api", "username": "monalisa", "permission": "pull"},
        config={"callbacks": [handler]},
    )
    assert isinstance(out, str) and not out.startswith("REFUSED"), out
    invite = json.loads(out)
    assert (invite["invitee"], invite["permissions"]) == ("monalisa", "read")
    assert last_intent(github)["operation"] == "collaborators.add"
    again = json.loads(  # the owner already has access
        tool.invoke({"repo": "acme/api", "username": "acme"}, config={"callbacks": [handler]})
    )
    assert again == {"status": "already a collaborator; nothing changed"}
    out = invoke(tool, repo="acme/api", username="nobody-here")
    assert out.startswith("The API answered 404")


def test_a_wrong_vaulted_token_is_refused_by_github(github: GitHubDeployment) -> None:
    """The stand-in opens only to the real token: swap the vault entry, and GitHub says no."""
    tool = github.tools("triage-bot")["github_get_issue"]
    with github.admin() as admin:
        admin.vault_put("github-token", "github", "gh_test_" + "x" * 36)
    try:
        out = invoke(tool, repo="acme/website", issue_number=1)
    finally:
        with github.admin() as admin:
            admin.vault_put("github-token", "github", TOKEN)
    assert out.startswith("The API answered 401") and "Bad credentials" in out
    assert answer(tool, repo="acme/website", issue_number=1)["number"] == 1
