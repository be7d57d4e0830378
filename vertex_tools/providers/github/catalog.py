"""The GitHub catalog: which GitHub REST calls the broker knows, and how it treats them.

GitHub's REST API takes and answers JSON; the token goes in
``Authorization: Bearer`` (GitHub also reads ``token <t>``, which PyGithub and
githubkit send; the broker injects its own header and drops the agent's).
Operations are named after GitHub's resources (``issues.comment``).

Resources are repositories, ``owner/name``: a grant lists them under ``repos``,
exactly or as ``owner/*`` for every repository of an owner. Every catalogued
path names its repository, except issue search, whose scope is the
``repo:owner/name`` qualifiers inside ``q``; :func:`check` reads them and
refuses a search that could reach past the grant's repositories.

``contents/{path+}`` takes a file path of any depth (GitHub marks it
``x-multi-segment``); its segments were validated by the broker's path checks
like any other (no dot segments, no encoded slashes).

This module is imported by the broker: no LangChain here.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from vertex_tools.decision import Decision, Reason
from vertex_tools.policy.facts import RiskClass
from vertex_tools.providers.catalog import Catalog, CheckContext, Operation, Rewrite

__all__ = ["CATALOG", "OWNER", "REPO_NAME", "check"]

OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"
"""A user or organisation login: letters, digits and hyphens, not starting with a hyphen."""
REPO_NAME = r"(?!\.\.?(?![A-Za-z0-9._-]))[A-Za-z0-9._-]{1,100}"
"""A repository name: letters, digits, ``.``, ``_`` and ``-``; never ``.`` or ``..``."""

_REPO_RE = re.compile(rf"{OWNER}/{REPO_NAME}")
_OWNER_RE = re.compile(OWNER)
_NUMBER_RE = re.compile(r"[1-9][0-9]{0,9}")

_REPO = ("owner", "repo")
_RESOURCE = "{owner}/{repo}"
_PAGES = ("per_page", "page")

# Fields whose text somebody other than the operator wrote: issue and pull request
# authors, commenters, committers. An agent must read them as data, never as orders.
_USERS = ("user.login", "assignee.login", "assignees[].login")
_LABELS = ("labels[].name", "labels[].description", "milestone.title", "milestone.description")
_ISSUE = ("title", "body", *_USERS, *_LABELS)
_PULL = (
    *_ISSUE,
    "head.ref",
    "head.label",
    "head.repo.description",
    "base.ref",
    "base.label",
    "merged_by.login",
)
_COMMENT = ("body", "user.login")
_FILE = ("content", "name", "path", "target")


def _each(prefix: str, fields: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{prefix}[].{f}" for f in fields)


_ISSUES = "/repos/{owner}/{repo}/issues"
_PULLS = "/repos/{owner}/{repo}/pulls"

_OPERATIONS = (
    Operation(
        "issues.get",
        "GET",
        _ISSUES + "/{issue_number}",
        RiskClass.READ,
        "Get one issue",
        control=(*_REPO, "issue_number"),
        resource=_RESOURCE,
        untrusted=_ISSUE,
    ),
    Operation(
        "issues.list",
        "GET",
        _ISSUES,
        RiskClass.READ,
        "List a repository's issues",
        control=(*_REPO, "state", "labels", "assignee", "creator", "since", "sort", *_PAGES),
        resource=_RESOURCE,
        untrusted=_each("", _ISSUE),
    ),
    Operation(
        "issues.create",
        "POST",
        _ISSUES,
        RiskClass.WRITE,
        "Open an issue",
        control=(*_REPO, "assignees", "labels", "milestone"),
        resource=_RESOURCE,
        content=("title", "body"),
        untrusted=_ISSUE,
    ),
    Operation(
        "issues.update",
        "PATCH",
        _ISSUES + "/{issue_number}",
        RiskClass.WRITE,
        "Edit, close or reopen an issue",
        control=(*_REPO, "issue_number", "state", "assignees", "labels"),
        resource=_RESOURCE,
        content=("title", "body"),
        untrusted=_ISSUE,
    ),
    Operation(
        "issues.comment",
        "POST",
        _ISSUES + "/{issue_number}/comments",
        RiskClass.WRITE,
        "Comment on an issue or pull request",
        control=(*_REPO, "issue_number"),
        resource=_RESOURCE,
        content=("body",),
        untrusted=_COMMENT,
    ),
    Operation(
        "issues.list_comments",
        "GET",
        _ISSUES + "/{issue_number}/comments",
        RiskClass.READ,
        "List the comments on an issue or pull request",
        control=(*_REPO, "issue_number", "since", *_PAGES),
        resource=_RESOURCE,
        untrusted=_each("", _COMMENT),
    ),
    Operation(
        "pulls.get",
        "GET",
        _PULLS + "/{pull_number}",
        RiskClass.READ,
        "Get one pull request",
        control=(*_REPO, "pull_number"),
        resource=_RESOURCE,
        untrusted=_PULL,
    ),
    Operation(
        "pulls.list",
        "GET",
        _PULLS,
        RiskClass.READ,
        "List a repository's pull requests",
        control=(*_REPO, "state", "head", "base", "sort", "direction", *_PAGES),
        resource=_RESOURCE,
        untrusted=_each("", _PULL),
    ),
    Operation(
        "pulls.create",
        "POST",
        _PULLS,
        RiskClass.WRITE,
        "Open a pull request",
        control=(*_REPO, "head", "base", "draft", "maintainer_can_modify"),
        resource=_RESOURCE,
        content=("title", "body"),
        untrusted=_PULL,
    ),
    # Merging puts someone else's code on the base branch (and often into a
    # deployment); the agent cannot take it back.
    Operation(
        "pulls.merge",
        "PUT",
        _PULLS + "/{pull_number}/merge",
        RiskClass.DESTRUCTIVE,
        "Merge a pull request",
        control=(*_REPO, "pull_number", "sha"),
        resource=_RESOURCE,
        content=("commit_title", "commit_message"),
    ),
    Operation(
        "contents.get",
        "GET",
        "/repos/{owner}/{repo}/contents/{path+}",
        RiskClass.READ,
        "Read a file or list a directory",
        control=(*_REPO, "path", "ref"),
        resource=_RESOURCE,
        untrusted=(*_FILE, *_each("", _FILE)),
    ),
    # A collaborator can push code, read private code and invite others: giving
    # that away is not undone by the agent that did it.
    Operation(
        "collaborators.add",
        "PUT",
        "/repos/{owner}/{repo}/collaborators/{username}",
        RiskClass.DESTRUCTIVE,
        "Invite a user as a collaborator on a repository",
        control=(*_REPO, "username", "permission"),
        resource=_RESOURCE,
        untrusted=("invitee.login", "inviter.login", "repository.description"),
    ),
    Operation(
        "search.issues",
        "GET",
        "/search/issues",
        RiskClass.READ,
        "Search issues and pull requests of named repositories",
        control=("q", "sort", "order", *_PAGES),
        untrusted=_each("items", _ISSUE),
        scoped=True,
    ),
)


def _deny(reason: Reason, ctx: CheckContext, message: str) -> Decision:
    return Decision.deny(reason, f"providers.github.{ctx.operation.name}", message)


def check(ctx: CheckContext) -> Decision | Rewrite | None:
    """GitHub's own checks, after the operation and the repository passed.

    1. Path names and numbers are what GitHub would read them as: the repository
       is written plainly (``web%73ite`` is refused, not decoded), a number is
       digits (``/issues/comments`` is another GitHub operation, not issue
       ``comments``), a username is a login.
    2. An issue search stays inside the grant's repositories (:func:`_check_search`).
    """
    owner, repo = ctx.params.get("owner"), ctx.params.get("repo")
    if owner is not None and repo is not None and not _REPO_RE.fullmatch(f"{owner}/{repo}"):
        return _deny(Reason.BAD_PATH, ctx, f"{owner[:40]}/{repo[:100]} is not a repository name")
    for name in ("issue_number", "pull_number"):
        value = ctx.params.get(name)
        if value is not None and not _NUMBER_RE.fullmatch(value):
            return _deny(Reason.BAD_PATH, ctx, f"{name} {value[:40]!r} is not a number")
    username = ctx.params.get("username")
    if username is not None and not _OWNER_RE.fullmatch(username):
        return _deny(Reason.BAD_PATH, ctx, f"{username[:40]!r} is not a GitHub login")
    if ctx.operation.name == "search.issues":
        return _check_search(ctx)
    return None


_SEARCH_PARAMS = frozenset({"q", "sort", "order", "per_page", "page"})
# GitHub's (advanced) issue search ORs terms with OR and groups them with
# parentheses: either could put a second, unscoped query beside the repo: one.
_OR_WORD = re.compile(r"(?<![A-Za-z0-9_])or(?![A-Za-z0-9_])", re.IGNORECASE)
_REPO_QUALIFIER = re.compile(r"repo:", re.IGNORECASE)
# Found case-insensitively, accepted only as GitHub documents it: a ``REPO:`` that
# GitHub might read as a plain word would leave the search unscoped.
_QUALIFIER_TOKEN = re.compile(rf"(-?)repo:({OWNER}/{REPO_NAME})")
_TOKEN = re.compile(r'(?:"[^"]*"|[^ "])+')
_QUALIFIER_NAME = re.compile(r"^-?([A-Za-z][A-Za-z_-]*):")
# Qualifiers that only narrow a search (ANDed with its repo: scope).
_FILTER_QUALIFIERS = frozenset(
    {
        "is",
        "state",
        "type",
        "in",
        "label",
        "author",
        "assignee",
        "mentions",
        "commenter",
        "involves",
        "team",
        "milestone",
        "no",
        "created",
        "updated",
        "closed",
        "merged",
        "comments",
        "interactions",
        "reactions",
        "archived",
        "draft",
        "review",
        "reviewed-by",
        "review-requested",
        "user-review-requested",
        "team-review-requested",
        "head",
        "base",
        "status",
        "language",
        "linked",
        "reason",
        "project",
        "sort",
    }
)


def _check_search(ctx: CheckContext) -> Decision | None:
    """A search's scope is its ``repo:`` qualifiers; they must all be in the grant.

    GitHub ANDs a query's terms and ORs its ``repo:`` qualifiers, so a query
    without ``OR``, parentheses or other ways to widen it, and with at least
    one ``repo:`` qualifier, reaches only the repositories those name. Anything
    this parser is not sure of is refused, never guessed at.
    """
    pairs = parse_qsl(ctx.facts.query, keep_blank_values=True)
    names = [k for k, _ in pairs]
    unknown = sorted(set(names) - _SEARCH_PARAMS)
    if unknown:
        return _deny(
            Reason.BAD_REQUEST,
            ctx,
            f"search.issues takes only {', '.join(sorted(_SEARCH_PARAMS))}, not {unknown[0]!r}",
        )
    if names.count("q") != 1 or len(names) != len(set(names)):
        return _deny(Reason.BAD_REQUEST, ctx, "send each search parameter once, and exactly one q")
    q = dict(pairs)["q"]
    problem = _unscoped(q)
    if problem is not None:
        return _deny(Reason.RESOURCE_NOT_ALLOWED, ctx, problem)
    qualifiers = _repo_qualifiers(q)
    if qualifiers is None:
        return _deny(
            Reason.RESOURCE_NOT_ALLOWED,
            ctx,
            "write each repository qualifier as repo:owner/name (or -repo:owner/name), "
            "outside quotes",
        )
    allowed = ", ".join(ctx.resources) or "none"
    if not any(positive for _, positive in qualifiers):
        return _deny(
            Reason.RESOURCE_NOT_ALLOWED,
            ctx,
            f"a search must name its repositories: add repo:owner/name to q (allowed: {allowed})",
        )
    # Exclusions are checked too: whether GitHub reads ``NOT -repo:x`` as an
    # exclusion is its parser's business, and a grant-wide name is safe either way.
    for repo, _ in qualifiers:
        if not CATALOG.resource_allowed(repo, ctx.resources):
            return _deny(
                Reason.RESOURCE_NOT_ALLOWED,
                ctx,
                f"search.issues in {repo!r} is outside grant {ctx.grant!r} (allowed: {allowed})",
            )
    return None


def _unscoped(q: str) -> str | None:
    """Why ``q`` could reach past its ``repo:`` qualifiers, or None."""
    # Terms are split on plain spaces only: a character that this parser and
    # GitHub's might split differently (tabs, NBSP, line separators) is refused.
    if re.search(r"[^\S ]|[\x00-\x1f\x7f\\]", q):
        return "q may contain no whitespace but spaces, no control characters, no backslashes"
    if q.count('"') % 2:
        return "q has an unclosed quote"
    if "(" in q or ")" in q:
        return "q may not group terms with parentheses; search with plain terms"
    if _OR_WORD.search(q):
        return "q may not use OR (it could search beyond the granted repositories)"
    for token in _TOKEN.findall(q):
        if token.startswith('"'):
            continue
        qualifier = _QUALIFIER_NAME.match(token)
        if qualifier is None:
            continue
        name = qualifier.group(1).lower()
        if name == "repo":
            continue
        if name not in _FILTER_QUALIFIERS:
            # org:, user:, owner: widen the search (GitHub ORs scope qualifiers), and an
            # unknown qualifier might: only known filters pass.
            return (
                f"q may not use the {name}: qualifier; scope a search with repo:owner/name "
                f"and filter with {', '.join(sorted(_FILTER_QUALIFIERS)[:8])}..."
            )
    return None


def _repo_qualifiers(q: str) -> list[tuple[str, bool]] | None:
    """(repository, is a positive qualifier) for each ``repo:``; None when one is unclear."""
    found: list[tuple[str, bool]] = []
    negate_next = False
    for token in _TOKEN.findall(q):
        negated, negate_next = negate_next, token.upper() == "NOT"
        if not _REPO_QUALIFIER.search(token):
            continue
        match = _QUALIFIER_TOKEN.fullmatch(token)
        if match is None:
            return None
        found.append((match.group(2), not (match.group(1) or negated)))
    return found


CATALOG = Catalog(
    provider="github",
    operations=_OPERATIONS,
    inject=(("Authorization", "Bearer {secret}"),),
    resource_key="repos",
    resource_pattern=rf"{OWNER}/(?:\*|{REPO_NAME})",
    check=check,
    api_origin="https://api.github.com",
)
