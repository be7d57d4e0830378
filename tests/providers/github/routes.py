"""What the GitHub stand-in does for each operation it serves.

Each handler gets the stand-in, the request and its parsed JSON body (already
checked against GitHub's description) and returns ``(status, payload)``;
:class:`ApiError` answers with one of GitHub's error bodies instead. Statuses
and messages are GitHub's: 404 for what the token cannot see, 405 for a pull
request that cannot be merged, 409 for a stale ``sha``, 422 for invalid input.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.providers.github import shapes

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from tests.providers.github.standin import GitHubStandIn, Issue, Pull, Repo

__all__ = ["ROUTES", "ApiError"]

Json = dict[str, Any]
Answer = tuple[int, Any]


class ApiError(Exception):
    """Answer with GitHub's error body instead of the handler's result."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.payload = shapes.error(message, status, **extra)


def _repo(s: GitHubStandIn, request: web.Request) -> Repo:
    repo = s.repos.get(f"{request.match_info['owner']}/{request.match_info['repo']}")
    if repo is None:
        raise ApiError(404, "Not Found")
    return repo


def _issue(s: GitHubStandIn, request: web.Request) -> tuple[Repo, Issue]:
    repo = _repo(s, request)
    issue = repo.issues.get(int(request.match_info["issue_number"]))
    if issue is None:
        raise ApiError(404, "Not Found")
    return repo, issue


def _pull(s: GitHubStandIn, request: web.Request) -> tuple[Repo, Pull]:
    repo = _repo(s, request)
    pull = repo.pulls.get(int(request.match_info["pull_number"]))
    if pull is None:
        raise ApiError(404, "Not Found")
    return repo, pull


def _invalid(resource: str, name: str, message: str) -> ApiError:
    return ApiError(
        422,
        "Validation Failed",
        errors=[{"resource": resource, "field": name, "code": "invalid", "message": message}],
    )


def _page(request: web.Request, items: list[Any]) -> list[Any]:
    per_page = int(request.query.get("per_page", "30"))
    page = int(request.query.get("page", "1"))
    return items[(page - 1) * per_page : page * per_page]


def _full_repo(s: GitHubStandIn, repo: Repo, full: bool) -> Json:
    return shapes.repository(
        s.users[repo.owner],
        repo.name,
        repo.uid,
        private=repo.private,
        description=repo.description,
        when="2024-01-02T03:04:05Z",
        full=full,
    )


def issue_json(s: GitHubStandIn, repo: Repo, issue: Issue) -> Json:
    """An issue as GitHub answers it."""
    assignees = [s.users[a] for a in issue.assignees]
    return shapes.issue(repo.full_name, issue, s.users[issue.author], assignees)


def _labels(s: GitHubStandIn, repo: Repo, names: list[Any]) -> list[Json]:
    out = []
    for item in names:
        name = item if isinstance(item, str) else str(item.get("name", ""))
        out.append(shapes.label(repo.full_name, name, s.uid(), "d73a4a", f"{name} label"))
    return out


# issues -----------------------------------------------------------------------------------


async def list_issues(s: GitHubStandIn, request: web.Request, body: Any) -> Answer:
    repo = _repo(s, request)
    q = request.query
    state = q.get("state", "open")
    wanted = set(filter(None, q.get("labels", "").split(",")))

    def wanted_issue(i: Issue) -> bool:
        names = {label["name"] for label in i.labels}
        return (
            (state == "all" or i.state == state)
            and wanted <= names
            and q.get("assignee", "") in ("", *i.assignees)
            and q.get("creator", i.author) == i.author
        )

    found = [i for i in sorted(repo.issues.values(), key=lambda i: -i.number) if wanted_issue(i)]
    return 200, [issue_json(s, repo, i) for i in _page(request, found)]


async def get_issue(s: GitHubStandIn, request: web.Request, body: Any) -> Answer:
    repo, issue = _issue(s, request)
    return 200, issue_json(s, repo, issue)


async def create_issue(s: GitHubStandIn, request: web.Request, body: Json) -> Answer:
    repo = _repo(s, request)
    issue = s.add_issue(repo.full_name, str(body["title"]), body.get("body"), s.viewer)
    issue.labels = _labels(s, repo, body.get("labels", []))
    issue.assignees = [a for a in body.get("assignees", []) if a in repo.collaborators]
    return 201, issue_json(s, repo, issue)


async def update_issue(s: GitHubStandIn, request: web.Request, body: Json | None) -> Answer:
    repo, issue = _issue(s, request)
    body = body or {}
    if body.get("title") is not None:
        issue.title = str(body["title"])
    if "body" in body:
        issue.body = body["body"]
    if "labels" in body:
        issue.labels = _labels(s, repo, body["labels"])
    if "assignees" in body:
        issue.assignees = [a for a in body["assignees"] if a in repo.collaborators]
    state = body.get("state")
    if state is not None and state != issue.state:
        issue.state = state
        issue.closed_at = shapes.now() if state == "closed" else None
        issue.state_reason = body.get("state_reason") or (
            "completed" if state == "closed" else "reopened"
        )
    issue.updated_at = shapes.now()
    return 200, issue_json(s, repo, issue)


async def create_comment(s: GitHubStandIn, request: web.Request, body: Json) -> Answer:
    repo, issue = _issue(s, request)
    comment = s.add_comment(repo.full_name, issue.number, body["body"], s.viewer)
    return 201, shapes.comment(repo.full_name, issue.number, comment, s.users[s.viewer])


async def list_comments(s: GitHubStandIn, request: web.Request, body: Any) -> Answer:
    repo, issue = _issue(s, request)
    return 200, [
        shapes.comment(repo.full_name, issue.number, c, s.users[c.author])
        for c in _page(request, issue.comments)
    ]


# pull requests ----------------------------------------------------------------------------


def pull_json(s: GitHubStandIn, repo: Repo, pull: Pull) -> Json:
    """A pull request as GitHub answers it."""
    return shapes.pull(repo.full_name, pull, s.users[pull.author], _full_repo(s, repo, True))


async def list_pulls(s: GitHubStandIn, request: web.Request, body: Any) -> Answer:
    repo = _repo(s, request)
    q = request.query
    state = q.get("state", "open")
    found = [
        p
        for p in sorted(repo.pulls.values(), key=lambda p: -p.number)
        if (state == "all" or p.state == state) and q.get("base", p.base) == p.base
    ]
    return 200, [pull_json(s, repo, p) for p in _page(request, found)]


async def get_pull(s: GitHubStandIn, request: web.Request, body: Any) -> Answer:
    repo, pull = _pull(s, request)
    return 200, pull_json(s, repo, pull)


async def create_pull(s: GitHubStandIn, request: web.Request, body: Json) -> Answer:
    repo = _repo(s, request)
    for name in ("title", "head", "base"):
        if not body.get(name):
            raise _invalid("PullRequest", name, f"{name} is missing")
    head = str(body["head"]).split(":")[-1]
    for name, branch in (("head", head), ("base", body["base"])):
        if branch not in repo.branches:
            raise _invalid("PullRequest", name, f"no branch {branch!r}")
    pull = s.add_pull(repo.full_name, body["title"], head, body["base"], s.viewer)
    pull.body = body.get("body")
    pull.draft = bool(body.get("draft", False))
    return 201, pull_json(s, repo, pull)


async def merge_pull(s: GitHubStandIn, request: web.Request, body: Json | None) -> Answer:
    _, pull = _pull(s, request)
    body = body or {}
    if pull.merged or pull.state != "open":
        raise ApiError(405, "Pull Request is not mergeable")
    if body.get("sha") not in (None, pull.head_sha):
        raise ApiError(409, "Head branch was modified. Review and try the merge again.")
    pull.merged, pull.state = True, "closed"
    pull.merged_at = pull.closed_at = shapes.now()
    pull.merged_by = s.users[s.viewer]
    pull.merge_commit_sha = shapes.blob_sha(f"merge {pull.uid}".encode())
    message = "Pull Request successfully merged"
    return 200, {"sha": pull.merge_commit_sha, "merged": True, "message": message}


# contents and collaborators ---------------------------------------------------------------


async def get_contents(s: GitHubStandIn, request: web.Request, body: Any) -> Answer:
    repo = _repo(s, request)
    ref = request.query.get("ref", "main")
    if ref not in repo.branches:
        raise ApiError(404, f"No commit found for the ref {ref}")
    path = request.match_info["path"].strip("/")
    data = repo.files.get(path)
    if data is not None:
        return 200, shapes.content_file(repo.full_name, path, data, ref)
    entries: dict[str, tuple[str, int, str]] = {}
    for name, content in repo.files.items():
        if name.startswith(path + "/"):
            child = name[len(path) + 1 :].split("/", 1)
            full = f"{path}/{child[0]}"
            if len(child) == 1:
                entries[full] = ("file", len(content), shapes.blob_sha(content))
            else:
                entries[full] = ("dir", 0, shapes.blob_sha(full.encode()))
    if not entries:
        raise ApiError(404, "Not Found")
    return 200, [
        shapes.content_entry(repo.full_name, p, kind, size, sha, ref)
        for p, (kind, size, sha) in sorted(entries.items())
    ]


async def add_collaborator(s: GitHubStandIn, request: web.Request, body: Json | None) -> Answer:
    repo = _repo(s, request)
    login = request.match_info["username"]
    if login not in s.users:
        raise ApiError(404, "Not Found")
    if login in repo.collaborators:
        return 204, None
    repo.invited.add(login)
    permission = (body or {}).get("permission", "push")
    if permission not in ("pull", "triage", "push", "maintain", "admin"):
        raise _invalid("Repository", "permission", f"unknown permission {permission!r}")
    invite = shapes.invitation(
        s.uid(),
        _full_repo(s, repo, False),
        s.users[login],
        s.users[s.viewer],
        permission,
        shapes.now(),
    )
    return 201, invite


# search -----------------------------------------------------------------------------------


async def search_issues(s: GitHubStandIn, request: web.Request, body: Any) -> Answer:
    """A small subset of GitHub's search: repo:, is:, state:, label:, author: and words."""
    try:
        terms = shlex.split(request.query["q"])
    except ValueError as exc:
        raise _invalid("Search", "q", str(exc)) from exc
    repos = [t[5:] for t in terms if t.startswith("repo:")]
    hits: list[Json] = []
    for full_name, repo in sorted(s.repos.items()):
        if repos and full_name not in repos:
            continue
        for issue in sorted(repo.issues.values(), key=lambda i: i.number):
            if all(_term(t, issue) for t in terms if not t.startswith("repo:")):
                hits.append({**issue_json(s, repo, issue), "score": 1.0})
    page = _page(request, hits)
    return 200, {
        "total_count": len(hits),
        "incomplete_results": False,
        "items": page,
        "search_type": "lexical",
    }


def _term(term: str, issue: Issue) -> bool:
    key, _, value = term.partition(":")
    if key == "is" and value in ("open", "closed"):
        return issue.state == value
    if key == "is":
        return value == "issue"
    if key == "state":
        return issue.state == value
    if key == "label":
        return value in {label["name"] for label in issue.labels}
    if key == "author":
        return issue.author == value
    text = f"{issue.title}\n{issue.body or ''}".lower()
    return term.lower() in text


_ISSUES = "/repos/{owner}/{repo}/issues"
_PULLS = "/repos/{owner}/{repo}/pulls"

ROUTES: list[tuple[str, str, Callable[[GitHubStandIn, web.Request, Any], Awaitable[Answer]]]] = [
    ("GET", _ISSUES, list_issues),
    ("POST", _ISSUES, create_issue),
    ("GET", _ISSUES + "/{issue_number}", get_issue),
    ("PATCH", _ISSUES + "/{issue_number}", update_issue),
    ("GET", _ISSUES + "/{issue_number}/comments", list_comments),
    ("POST", _ISSUES + "/{issue_number}/comments", create_comment),
    ("GET", _PULLS, list_pulls),
    ("POST", _PULLS, create_pull),
    ("GET", _PULLS + "/{pull_number}", get_pull),
    ("PUT", _PULLS + "/{pull_number}/merge", merge_pull),
    ("GET", "/repos/{owner}/{repo}/contents/{path}", get_contents),
    ("PUT", "/repos/{owner}/{repo}/collaborators/{username}", add_collaborator),
    ("GET", "/search/issues", search_issues),
]
"""(method, GitHub's path template, handler) for every operation the stand-in serves."""
