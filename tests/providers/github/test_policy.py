"""GitHub grants: what the loader refuses, and what the engine decides for each request."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.providers.github.conftest import policy_text
from vertex_tools.decision import Effect, Reason
from vertex_tools.errors import PolicyError
from vertex_tools.policy import parse_policy
from vertex_tools.policy.engine import RequestFacts, RiskClass, decide

POLICY = parse_policy(policy_text("https://api.github.com").encode()).policy

HEAD = """version = 1

[upstreams.github]
provider = "github"
base_url = "https://api.github.com"
secret = "github-token"

[grants.bot]
upstream = "github"
"""


def facts(method: str, path: str, query: str = "", body: bytes = b"") -> RequestFacts:
    return RequestFacts("github", method, path, query, "application/json", body)


def q(text: str, **more: str) -> str:
    return urlencode({"q": text, **more})


@pytest.mark.parametrize(
    ("grant", "method", "path", "reason"),
    [
        ("triage-bot", "GET", "/repos/acme/website/issues/1", Reason.ALLOWED),
        ("triage-bot", "POST", "/repos/acme/website/issues/1/comments", Reason.ALLOWED),
        ("triage-bot", "DELETE", "/repos/acme/website/issues/1", Reason.UNKNOWN_OPERATION),
        ("triage-bot", "GET", "/repos/acme/website/git/refs", Reason.UNKNOWN_OPERATION),
        ("triage-bot", "POST", "/repos/acme/website/issues", Reason.NOT_ALLOWED),
        ("triage-bot", "PUT", "/repos/acme/website/pulls/3/merge", Reason.NOT_ALLOWED),
        ("triage-bot", "GET", "/repos/acme/api/issues/1", Reason.RESOURCE_NOT_ALLOWED),
        ("triage-bot", "GET", "/repos/other/secret/issues/1", Reason.RESOURCE_NOT_ALLOWED),
        ("triage-bot", "GET", "/repos/ACME/website/issues/1", Reason.RESOURCE_NOT_ALLOWED),
        # another GitHub operation (list the repository's comments), not issue "comments"
        ("triage-bot", "GET", "/repos/acme/website/issues/comments", Reason.BAD_PATH),
        ("triage-bot", "GET", "/repos/acme/website/issues/01", Reason.BAD_PATH),
        ("triage-bot", "GET", "/repos/acme/website/issues/../1", Reason.BAD_PATH),
        ("maintainer", "GET", "/repos/acme/anything/pulls/2", Reason.ALLOWED),
        ("maintainer", "GET", "/repos/acme/website/pulls/events", Reason.BAD_PATH),
        # within acme/*, but percent-encoded: refused rather than decoded differently
        ("maintainer", "GET", "/repos/acme/web%73ite/pulls", Reason.BAD_PATH),
        ("maintainer", "GET", "/repos/other/secret/pulls/2", Reason.RESOURCE_NOT_ALLOWED),
        ("maintainer", "PUT", "/repos/acme/website/collaborators/hubot", Reason.ALLOWED),
        ("maintainer", "PUT", "/repos/acme/website/collaborators/-x", Reason.BAD_PATH),
        ("maintainer", "GET", "/repos/acme/website/contents/README.md", Reason.ALLOWED),
    ],
)
def test_decisions(grant: str, method: str, path: str, reason: Reason) -> None:
    verdict = decide(POLICY, grant, facts(method, path))
    assert verdict.decision.reason is reason, verdict.decision.message
    assert verdict.decision.effect is (Effect.ALLOW if reason is Reason.ALLOWED else Effect.DENY)


def test_an_allowed_call_resolves_to_operation_risk_and_repository() -> None:
    verdict = decide(POLICY, "maintainer", facts("PUT", "/repos/acme/api/collaborators/hubot"))
    assert verdict.resolved is not None
    assert verdict.resolved.operation == "collaborators.add"
    assert verdict.resolved.risk is RiskClass.DESTRUCTIVE
    assert verdict.resolved.resource == "acme/api"
    assert verdict.decision.rule == "grants.maintainer.operations[0]"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (q("crash repo:acme/website"), Reason.ALLOWED),
        (q('repo:acme/website is:issue "memory leak" label:bug'), Reason.ALLOWED),
        (q("repo:acme/website crash", sort="created", order="asc", per_page="5"), Reason.ALLOWED),
        (q("crash"), Reason.RESOURCE_NOT_ALLOWED),
        (q("crash org:acme"), Reason.RESOURCE_NOT_ALLOWED),
        (q("crash repo:other/secret"), Reason.RESOURCE_NOT_ALLOWED),
        (q("repo:acme/website repo:other/secret"), Reason.RESOURCE_NOT_ALLOWED),
        (q("repo:acme/api"), Reason.RESOURCE_NOT_ALLOWED),
        (q("repo:ACME/website"), Reason.RESOURCE_NOT_ALLOWED),
        (q("REPO:acme/website crash"), Reason.RESOURCE_NOT_ALLOWED),
        # an exclusion is no scope; a foreign name is refused even as one
        (q("-repo:acme/website crash"), Reason.RESOURCE_NOT_ALLOWED),
        (q("NOT repo:acme/website"), Reason.RESOURCE_NOT_ALLOWED),
        (q("repo:acme/website -repo:other/secret"), Reason.RESOURCE_NOT_ALLOWED),
        # ways to put an unscoped query beside the scoped one
        (q("repo:acme/website OR is:issue"), Reason.RESOURCE_NOT_ALLOWED),
        (q("repo:acme/website or is:issue"), Reason.RESOURCE_NOT_ALLOWED),
        (q("(repo:acme/website) is:issue"), Reason.RESOURCE_NOT_ALLOWED),
        # qualifiers GitHub would read as text, or might read differently from us
        (q('"crash repo:acme/website now"'), Reason.RESOURCE_NOT_ALLOWED),
        (q('repo:"acme/website"'), Reason.RESOURCE_NOT_ALLOWED),
        (q('repo:acme/website "unclosed'), Reason.RESOURCE_NOT_ALLOWED),
        (q("crash\trepo:acme/website"), Reason.RESOURCE_NOT_ALLOWED),
        (q("crash\u00a0repo:acme/website"), Reason.RESOURCE_NOT_ALLOWED),
        (q("x,repo:acme/website"), Reason.RESOURCE_NOT_ALLOWED),
        (q("repo:acme/website,other/secret"), Reason.RESOURCE_NOT_ALLOWED),
        (q("repo:acme/website\\"), Reason.RESOURCE_NOT_ALLOWED),
        # parameters that change what q means, or a second q
        (q("repo:acme/website", advanced_search="true"), Reason.BAD_REQUEST),
        (q("repo:acme/website", search_type="semantic"), Reason.BAD_REQUEST),
        (q("repo:acme/website") + "&q=crash", Reason.BAD_REQUEST),
        ("sort=created", Reason.BAD_REQUEST),
        ("", Reason.BAD_REQUEST),
    ],
)
def test_search_stays_inside_the_grants_repositories(query: str, reason: Reason) -> None:
    verdict = decide(POLICY, "triage-bot", facts("GET", "/search/issues", query))
    assert verdict.decision.reason is reason, verdict.decision.message
    if reason is not Reason.ALLOWED:
        assert verdict.decision.rule == "providers.github.search.issues"


def test_search_with_an_owner_wildcard() -> None:
    query = q("repo:acme/api repo:acme/website crash")
    assert decide(POLICY, "maintainer", facts("GET", "/search/issues", query)).decision.allowed
    query = q("repo:acme/api repo:other/secret")
    verdict = decide(POLICY, "maintainer", facts("GET", "/search/issues", query))
    assert verdict.decision.reason is Reason.RESOURCE_NOT_ALLOWED
    assert "other/secret" in verdict.decision.message


def test_search_refusal_says_what_to_do() -> None:
    verdict = decide(POLICY, "triage-bot", facts("GET", "/search/issues", q("crash")))
    assert "repo:owner/name" in verdict.decision.message
    assert "acme/website" in verdict.decision.message


def problems(grant_body: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(PolicyError) as caught:
        parse_policy((HEAD + grant_body).encode())
    return caught.value.problems


def test_a_valid_grant_loads() -> None:
    body = 'operations = ["issues.get", "search.issues"]\nrepos = ["acme/website", "acme/*"]\n'
    grant = parse_policy((HEAD + body).encode()).policy.grants["bot"]
    assert grant.repos == ["acme/website", "acme/*"]


def test_an_unknown_operation_is_a_policy_error() -> None:
    found = problems('operations = ["issues.delete"]\nrepos = ["acme/website"]\n')
    assert [(k, line) for k, line, _ in found] == [("grants.bot.operations", 10)]
    assert "'issues.delete' is not a github operation" in found[0][2]
    assert "issues.get" in found[0][2]  # the known ones are listed


@pytest.mark.parametrize(
    "repo", ["acme", "acme/website/x", "acme/..", "-acme/website", "acme/web site", "*/x"]
)
def test_a_bad_repository_name_is_a_policy_error(repo: str) -> None:
    found = problems(f'operations = ["issues.get"]\nrepos = ["{repo}"]\n')
    assert [k for k, _, _ in found] == ["grants.bot.repos"]
    assert f"{repo!r} is not a valid github resource" in found[0][2]


def test_repository_operations_need_repos() -> None:
    found = problems('operations = ["issues.get"]\n')
    assert [k for k, _, _ in found] == ["grants.bot.repos"]


def test_github_grants_have_no_tables_or_allow_rules() -> None:
    found = problems('operations = ["issues.get"]\nrepos = ["a/b"]\ntables = ["orders"]\n')
    assert [k for k, _, _ in found] == ["grants.bot.tables"]
    found = problems('allow = [{ method = "GET", path = "/repos/**" }]\n')
    assert "grants.bot.allow" in [k for k, _, _ in found]


def test_no_github_operation_needs_a_spend_ceiling() -> None:
    # The loader refuses money operations without spend; GitHub has none, so a
    # grant of every operation loads without one.
    assert POLICY.grants["maintainer"].spend is None


def test_a_search_only_grant_must_list_its_repositories() -> None:
    """Search names no repository in its path, but is confined by the grant's repos:
    without any, every search would be refused, so the policy says so up front."""
    from vertex_tools.errors import PolicyError
    from vertex_tools.policy import parse_policy

    text = (
        'version = 1\n[upstreams.github]\nprovider = "github"\n'
        'base_url = "https://api.github.com"\nsecret = "gh"\n'
        '[grants.searcher]\nupstream = "github"\noperations = ["search.issues"]\n'
    )
    with pytest.raises(PolicyError) as info:
        parse_policy(text.encode())
    assert [k for k, _, _ in info.value.problems] == ["grants.searcher.repos"]
