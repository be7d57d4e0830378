"""GitHub's JSON objects as api.github.com answers them, built from the stand-in's state.

Every object carries the fields GitHub's OpenAPI description requires (the
stand-in checks each answer against it), with the URLs GitHub would put there.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "API",
    "WEB",
    "blob_sha",
    "comment",
    "content_entry",
    "content_file",
    "error",
    "invitation",
    "issue",
    "label",
    "now",
    "pull",
    "repository",
    "user",
]

API = "https://api.github.com"
WEB = "https://github.com"
DOCS = "https://docs.github.com/rest"

Json = dict[str, Any]


def now() -> str:
    """The current time in GitHub's format."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node(kind: str, number: int) -> str:
    return base64.b64encode(f"0:{kind}{number}".encode()).decode().rstrip("=")


def error(message: str, status: int, **extra: Any) -> Json:
    """GitHub's error body: ``{"message", "documentation_url", "status"}``."""
    return {"message": message, "documentation_url": DOCS, "status": str(status), **extra}


def blob_sha(data: bytes) -> str:
    """The git blob id of ``data``, as GitHub reports a file's ``sha``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def user(login: str, uid: int, kind: str = "User") -> Json:
    """A simple-user."""
    api = f"{API}/users/{login}"
    return {
        "login": login,
        "id": uid,
        "node_id": _node("User", uid),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
        "gravatar_id": "",
        "url": api,
        "html_url": f"{WEB}/{login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": kind,
        "site_admin": False,
    }


_REPO_LINKS = {
    "archive_url": "/{archive_format}{/ref}",
    "assignees_url": "/assignees{/user}",
    "blobs_url": "/git/blobs{/sha}",
    "branches_url": "/branches{/branch}",
    "collaborators_url": "/collaborators{/collaborator}",
    "comments_url": "/comments{/number}",
    "commits_url": "/commits{/sha}",
    "compare_url": "/compare/{base}...{head}",
    "contents_url": "/contents/{+path}",
    "contributors_url": "/contributors",
    "deployments_url": "/deployments",
    "downloads_url": "/downloads",
    "events_url": "/events",
    "forks_url": "/forks",
    "git_commits_url": "/git/commits{/sha}",
    "git_refs_url": "/git/refs{/sha}",
    "git_tags_url": "/git/tags{/sha}",
    "hooks_url": "/hooks",
    "issue_comment_url": "/issues/comments{/number}",
    "issue_events_url": "/issues/events{/number}",
    "issues_url": "/issues{/number}",
    "keys_url": "/keys{/key_id}",
    "labels_url": "/labels{/name}",
    "languages_url": "/languages",
    "merges_url": "/merges",
    "milestones_url": "/milestones{/number}",
    "notifications_url": "/notifications{?since,all,participating}",
    "pulls_url": "/pulls{/number}",
    "releases_url": "/releases{/id}",
    "stargazers_url": "/stargazers",
    "statuses_url": "/statuses/{sha}",
    "subscribers_url": "/subscribers",
    "subscription_url": "/subscription",
    "tags_url": "/tags",
    "teams_url": "/teams",
    "trees_url": "/git/trees{/sha}",
}


def repository(
    owner: Json, name: str, rid: int, *, private: bool, description: str, when: str, full: bool
) -> Json:
    """A minimal-repository, or with ``full`` a repository (as in a pull request's head)."""
    full_name = f"{owner['login']}/{name}"
    api = f"{API}/repos/{full_name}"
    out: Json = {
        "id": rid,
        "node_id": _node("Repository", rid),
        "name": name,
        "full_name": full_name,
        "owner": owner,
        "private": private,
        "html_url": f"{WEB}/{full_name}",
        "description": description,
        "fork": False,
        "url": api,
        **{key: api + suffix for key, suffix in _REPO_LINKS.items()},
    }
    if full:
        out.update(
            git_url=f"git://github.com/{full_name}.git",
            ssh_url=f"git@github.com:{full_name}.git",
            clone_url=f"{WEB}/{full_name}.git",
            svn_url=f"{WEB}/{full_name}",
            mirror_url=None,
            homepage=None,
            language="TypeScript",
            forks=0,
            forks_count=0,
            stargazers_count=3,
            watchers_count=3,
            watchers=3,
            size=120,
            default_branch="main",
            open_issues=1,
            open_issues_count=1,
            has_issues=True,
            has_projects=True,
            has_wiki=False,
            has_pages=False,
            has_downloads=True,
            archived=False,
            disabled=False,
            license=None,
            pushed_at=when,
            created_at=when,
            updated_at=when,
        )
    return out


def label(full_name: str, name: str, lid: int, color: str, description: str) -> Json:
    """A label."""
    return {
        "id": lid,
        "node_id": _node("Label", lid),
        "url": f"{API}/repos/{full_name}/labels/{name}",
        "name": name,
        "description": description,
        "color": color,
        "default": False,
    }


def _issue_links(full_name: str, number: int, kind: str) -> Json:
    api = f"{API}/repos/{full_name}/issues/{number}"
    return {
        "url": api if kind == "issues" else f"{API}/repos/{full_name}/pulls/{number}",
        "repository_url": f"{API}/repos/{full_name}",
        "labels_url": f"{api}/labels{{/name}}",
        "comments_url": f"{api}/comments",
        "events_url": f"{api}/events",
        "html_url": f"{WEB}/{full_name}/{'issues' if kind == 'issues' else 'pull'}/{number}",
    }


def issue(full_name: str, record: Any, author: Json, assignees: list[Json]) -> Json:
    """An issue (``record`` is the stand-in's issue)."""
    return {
        **_issue_links(full_name, record.number, "issues"),
        "id": record.uid,
        "node_id": _node("Issue", record.uid),
        "number": record.number,
        "title": record.title,
        "body": record.body,
        "user": author,
        "labels": record.labels,
        "state": record.state,
        "state_reason": record.state_reason,
        "locked": False,
        "assignee": assignees[0] if assignees else None,
        "assignees": assignees,
        "milestone": None,
        "comments": len(record.comments),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "closed_at": record.closed_at,
        "author_association": "MEMBER",
    }


def comment(full_name: str, number: int, record: Any, author: Json) -> Json:
    """An issue-comment."""
    return {
        "id": record.uid,
        "node_id": _node("IssueComment", record.uid),
        "url": f"{API}/repos/{full_name}/issues/comments/{record.uid}",
        "html_url": f"{WEB}/{full_name}/issues/{number}#issuecomment-{record.uid}",
        "issue_url": f"{API}/repos/{full_name}/issues/{number}",
        "body": record.body,
        "user": author,
        "created_at": record.created_at,
        "updated_at": record.created_at,
        "author_association": "MEMBER",
    }


def _branch(repo: Json, ref: str, sha: str) -> Json:
    owner = repo["owner"]
    return {"label": f"{owner['login']}:{ref}", "ref": ref, "sha": sha, "user": owner, "repo": repo}


def pull(full_name: str, record: Any, author: Json, repo: Json) -> Json:
    """A pull-request (whose fields are also all a pull-request-simple needs)."""
    api = f"{API}/repos/{full_name}"
    links = _issue_links(full_name, record.number, "pulls")
    return {
        **links,
        "id": record.uid,
        "node_id": _node("PullRequest", record.uid),
        "diff_url": f"{links['html_url']}.diff",
        "patch_url": f"{links['html_url']}.patch",
        "issue_url": f"{api}/issues/{record.number}",
        "commits_url": f"{api}/pulls/{record.number}/commits",
        "review_comments_url": f"{api}/pulls/{record.number}/comments",
        "review_comment_url": f"{api}/pulls/comments{{/number}}",
        "comments_url": f"{api}/issues/{record.number}/comments",
        "statuses_url": f"{api}/statuses/{record.head_sha}",
        "number": record.number,
        "state": record.state,
        "locked": False,
        "title": record.title,
        "user": author,
        "body": record.body,
        "labels": [],
        "milestone": None,
        "active_lock_reason": None,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "closed_at": record.closed_at,
        "merged_at": record.merged_at,
        "merge_commit_sha": record.merge_commit_sha,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "head": _branch(repo, record.head, record.head_sha),
        "base": _branch(repo, record.base, record.base_sha),
        "_links": {
            name: {"href": href}
            for name, href in {
                "self": links["url"],
                "html": links["html_url"],
                "issue": f"{api}/issues/{record.number}",
                "comments": f"{api}/issues/{record.number}/comments",
                "review_comments": f"{api}/pulls/{record.number}/comments",
                "review_comment": f"{api}/pulls/comments{{/number}}",
                "commits": f"{api}/pulls/{record.number}/commits",
                "statuses": f"{api}/statuses/{record.head_sha}",
            }.items()
        },
        "author_association": "MEMBER",
        "auto_merge": None,
        "draft": record.draft,
        "merged": record.merged,
        "mergeable": None if record.merged else True,
        "rebaseable": None if record.merged else True,
        "mergeable_state": "unknown" if record.merged else "clean",
        "merged_by": record.merged_by,
        "comments": 0,
        "review_comments": 0,
        "maintainer_can_modify": False,
        "commits": 1,
        "additions": 12,
        "deletions": 3,
        "changed_files": 2,
    }


def _content_links(full_name: str, path: str, sha: str, kind: str, ref: str) -> Json:
    api = f"{API}/repos/{full_name}/contents/{path}?ref={ref}"
    html = f"{WEB}/{full_name}/{'blob' if kind == 'file' else 'tree'}/{ref}/{path}"
    git = f"{API}/repos/{full_name}/git/{'blobs' if kind == 'file' else 'trees'}/{sha}"
    return {
        "url": api,
        "html_url": html,
        "git_url": git,
        "_links": {"self": api, "git": git, "html": html},
    }


def content_entry(full_name: str, path: str, kind: str, size: int, sha: str, ref: str) -> Json:
    """One entry of a content-directory."""
    raw = f"https://raw.githubusercontent.com/{full_name}/{ref}/{path}"
    return {
        "type": kind,
        "size": size,
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "sha": sha,
        "download_url": raw if kind == "file" else None,
        **_content_links(full_name, path, sha, kind, ref),
    }


def content_file(full_name: str, path: str, data: bytes, ref: str) -> Json:
    """A content-file: the data base64-encoded in lines of 60, as GitHub sends it."""
    encoded = base64.b64encode(data).decode()
    lines = [encoded[i : i + 60] for i in range(0, len(encoded), 60)]
    entry = content_entry(full_name, path, "file", len(data), blob_sha(data), ref)
    return {**entry, "encoding": "base64", "content": "\n".join(lines) + "\n"}


def invitation(
    iid: int, repo: Json, invitee: Json, inviter: Json, permission: str, when: str
) -> Json:
    """A repository-invitation; GitHub names the permissions read and write, not pull and push."""
    names = {"pull": "read", "push": "write"}
    return {
        "id": iid,
        "node_id": _node("RepositoryInvitation", iid),
        "repository": repo,
        "invitee": invitee,
        "inviter": inviter,
        "permissions": names.get(permission, permission),
        "created_at": when,
        "expired": False,
        "url": f"{API}/user/repository_invitations/{iid}",
        "html_url": f"{repo['html_url']}/invitations",
    }
