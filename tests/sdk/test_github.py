"""PyGithub and githubkit through the broker: base URL and token change, nothing else.

Both send ``Authorization: token <t>``. The grant's repositories and operations
apply as they do to the toolkit; a refusal is the SDK's own error
(``github.GithubException``, githubkit ``RequestFailed``) with the broker's
reason in GitHub's ``message`` field. The URLs GitHub hands out
(``https://api.github.com/...``), which PyGithub follows, come back pointing at
the broker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Final

import github
import pytest
from githubkit import GitHub, TokenAuthStrategy
from githubkit.exception import RequestFailed

from tests.providers.github.conftest import TOKEN
from tests.sdk.conftest import GitHubSdk
from vertex_tools.decision import Decision, Reason


@pytest.fixture(autouse=True)
def _stand_in_found_nothing(github_sdk: GitHubSdk) -> Iterator[None]:
    """Fail a test whose requests or answers GitHub's description does not allow."""
    github_sdk.standin.take_violations()
    yield
    found = github_sdk.standin.take_violations()
    assert not found, "GitHub's OpenAPI description disagrees:\n" + "\n".join(found)


def _pygithub(sdk: GitHubSdk, grant: str = "sdk-triage") -> github.Github:
    # lazy: objects are fetched when read (get_repo alone would read the repository,
    # which no grant here allows); retry=None: a refusal is an answer, not a fault
    return github.Github(
        base_url=sdk.deployment.base_url,
        auth=github.Auth.Token(sdk.deployment.token(grant)),
        retry=None,
        lazy=True,
    )


def _githubkit(sdk: GitHubSdk, grant: str = "sdk-triage") -> GitHub[TokenAuthStrategy]:
    return GitHub(
        TokenAuthStrategy(sdk.deployment.token(grant)),
        base_url=sdk.deployment.base_url,
        auto_retry=False,
    )


# The REST version the stand-in's pinned description speaks; githubkit's default is newer.
V: Final = "2022-11-28"


# PyGithub --------------------------------------------------------------------------------


def test_pygithub_reads_an_issue_and_comments_on_it(github_sdk: GitHubSdk) -> None:
    token = github_sdk.deployment.token("sdk-triage")
    gh = github.Github(
        base_url=github_sdk.deployment.base_url, auth=github.Auth.Token(token), lazy=True
    )
    issue = gh.get_repo("acme/website").get_issue(1)
    assert issue.title == "Login page crashes on Safari"
    # the URL GitHub handed out now names the broker, so following it stays brokered
    assert issue.url == f"{github_sdk.deployment.base_url}/repos/acme/website/issues/1"
    comment = issue.create_comment("Reproduced on Safari 17.2; looking into it.")
    assert comment.body == "Reproduced on Safari 17.2; looking into it."
    sent = github_sdk.standin.last("POST", "/repos/acme/website/issues/1/comments")
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"  # the vaulted one
    assert not [name for name, value in sent.headers.items() if token in value]


def test_pygithub_lists_issues_and_comments(github_sdk: GitHubSdk) -> None:
    repo = _pygithub(github_sdk).get_repo("acme/website")
    titles = [issue.title for issue in repo.get_issues(state="all")]
    assert "Login page crashes on Safari" in titles
    comments = [c.body for c in repo.get_issue(1).get_comments()]
    assert "Same here on Safari 17.2." in comments


def test_pygithub_repository_outside_the_grant_is_refused(github_sdk: GitHubSdk) -> None:
    repo = _pygithub(github_sdk).get_repo("acme/api")
    with pytest.raises(github.GithubException) as refused:
        _ = repo.get_issue(1).title
    assert refused.value.status == 403
    assert "resource_not_allowed" in str(refused.value)
    assert refused.value.message is not None
    assert refused.value.message.startswith("vertex_tools: resource_not_allowed")
    data = refused.value.data
    assert isinstance(data, dict)
    assert Decision.from_json(data["error"]).reason is Reason.RESOURCE_NOT_ALLOWED


def test_pygithub_operation_outside_the_grant_is_refused(github_sdk: GitHubSdk) -> None:
    repo = _pygithub(github_sdk).get_repo("acme/website")
    before = len(github_sdk.standin.received)
    with pytest.raises(github.GithubException) as refused:
        _ = repo.get_pull(3).title
    assert refused.value.status == 403
    assert "not_allowed" in str(refused.value)
    assert len(github_sdk.standin.received) == before


def test_pygithub_on_a_grant_without_bearer_is_refused(github_sdk: GitHubSdk) -> None:
    repo = _pygithub(github_sdk, "signed-only").get_repo("acme/website")
    with pytest.raises(github.GithubException) as refused:
        _ = repo.get_issue(1).title
    assert refused.value.status == 401
    assert "bearer_not_allowed" in str(refused.value)


# githubkit -------------------------------------------------------------------------------


def test_githubkit_reads_an_issue_and_comments_on_it(github_sdk: GitHubSdk) -> None:
    gh = _githubkit(github_sdk)
    issue = gh.rest(V).issues.get("acme", "website", 1).parsed_data
    assert issue.title == "Login page crashes on Safari"
    made = gh.rest(V).issues.create_comment("acme", "website", 1, body="Fixed in #3.").parsed_data
    assert made.body == "Fixed in #3."
    listed = gh.rest(V).issues.list_for_repo("acme", "website", state="all")
    titles = [issue["title"] for issue in json.loads(listed.content)]
    assert "Login page crashes on Safari" in titles


def test_githubkit_repository_outside_the_grant_is_refused(github_sdk: GitHubSdk) -> None:
    gh = _githubkit(github_sdk)
    with pytest.raises(RequestFailed) as refused:
        gh.rest(V).issues.get("other", "secret", 1)
    assert refused.value.response.status_code == 403
    body = refused.value.response.json()
    assert body["message"].startswith("vertex_tools: resource_not_allowed")
    assert Decision.from_json(body["error"]).reason is Reason.RESOURCE_NOT_ALLOWED


def test_githubkit_operation_outside_the_grant_is_refused(github_sdk: GitHubSdk) -> None:
    gh = _githubkit(github_sdk)
    with pytest.raises(RequestFailed) as refused:
        gh.rest(V).pulls.list("acme", "website")
    assert refused.value.response.status_code == 403
    assert "not_allowed" in refused.value.response.json()["message"]
