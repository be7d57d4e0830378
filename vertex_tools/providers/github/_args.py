"""Argument schemas of the GitHub tools: what the model fills in, described for it.

The checks here help the model get a call right the first time; the broker
checks the request again, since a tool's checks bind only an honest caller.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from vertex_tools.providers.github.catalog import OWNER

__all__ = [
    "AddCollaboratorArgs",
    "CommentArgs",
    "CreateIssueArgs",
    "CreatePullArgs",
    "GetContentsArgs",
    "IssueArgs",
    "ListCommentsArgs",
    "ListIssuesArgs",
    "ListPullsArgs",
    "MergePullArgs",
    "PullArgs",
    "SearchIssuesArgs",
    "UpdateIssueArgs",
]


def _not_dots(value: str) -> str:
    if value.split("/")[-1] in (".", ".."):
        raise ValueError("a repository name is never '.' or '..'")
    return value


def _file_path(value: str) -> str:
    value = value.strip("/")
    parts = value.split("/")
    if not value or any(p in ("", ".", "..") for p in parts):
        raise ValueError("give a path like 'README.md' or 'docs/guide.md', without '.' or '..'")
    return value


Repo = Annotated[
    str,
    Field(
        pattern=rf"^{OWNER}/[A-Za-z0-9._-]{{1,100}}$",
        description="The repository, written owner/name, e.g. 'octocat/hello-world'.",
    ),
    AfterValidator(_not_dots),
]
Login = Annotated[
    str, Field(pattern=rf"^{OWNER}$", description="A GitHub username, e.g. 'octocat'.")
]
Number = Annotated[int, Field(ge=1, le=9_999_999_999)]
PerPage = Annotated[
    int | None, Field(default=None, ge=1, le=100, description="Results per page (1-100).")
]
Page = Annotated[int | None, Field(default=None, ge=1, description="Page number, from 1.")]
Labels = Annotated[
    list[str] | None,
    Field(default=None, description="Label names, e.g. ['bug', 'help wanted']."),
]
Assignees = Annotated[list[Login] | None, Field(default=None, description="Usernames to assign.")]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IssueArgs(_Args):
    """One issue."""

    repo: Repo
    issue_number: Number = Field(description="The issue's number, as shown after '#'.")


class ListIssuesArgs(_Args):
    """Which issues to list."""

    repo: Repo
    state: Literal["open", "closed", "all"] = Field(
        default="open", description="Only open issues, only closed ones, or all."
    )
    labels: Labels
    assignee: Login | None = Field(default=None, description="Only issues assigned to this user.")
    creator: Login | None = Field(default=None, description="Only issues opened by this user.")
    per_page: PerPage
    page: Page


class CreateIssueArgs(_Args):
    """A new issue."""

    repo: Repo
    title: str = Field(min_length=1, max_length=256, description="The issue's title.")
    body: str | None = Field(default=None, description="The issue's text, in Markdown.")
    labels: Labels
    assignees: Assignees


class UpdateIssueArgs(_Args):
    """Changes to an issue; fields left out stay as they are."""

    repo: Repo
    issue_number: Number = Field(description="The issue's number, as shown after '#'.")
    title: str | None = Field(default=None, min_length=1, max_length=256, description="New title.")
    body: str | None = Field(default=None, description="New text, replacing the old, in Markdown.")
    state: Literal["open", "closed"] | None = Field(
        default=None, description="'closed' to close the issue, 'open' to reopen it."
    )
    state_reason: Literal["completed", "not_planned", "reopened"] | None = Field(
        default=None, description="Why its state changes; used only with state."
    )
    labels: Labels = Field(default=None, description="Replaces all labels; [] removes them.")
    assignees: Assignees = Field(
        default=None, description="Replaces all assignees; [] removes them."
    )


class CommentArgs(_Args):
    """A comment on an issue or pull request."""

    repo: Repo
    issue_number: Number = Field(description="The issue's or pull request's number.")
    body: str = Field(min_length=1, description="The comment, in Markdown.")


class ListCommentsArgs(_Args):
    """Which comments to list."""

    repo: Repo
    issue_number: Number = Field(description="The issue's or pull request's number.")
    per_page: PerPage
    page: Page


class PullArgs(_Args):
    """One pull request."""

    repo: Repo
    pull_number: Number = Field(description="The pull request's number, as shown after '#'.")


class ListPullsArgs(_Args):
    """Which pull requests to list."""

    repo: Repo
    state: Literal["open", "closed", "all"] = Field(
        default="open", description="Only open pull requests, only closed ones, or all."
    )
    base: str | None = Field(default=None, description="Only those into this branch, e.g. 'main'.")
    per_page: PerPage
    page: Page


class CreatePullArgs(_Args):
    """A new pull request."""

    repo: Repo
    title: str = Field(min_length=1, max_length=256, description="The pull request's title.")
    head: str = Field(
        min_length=1, description="The branch with the changes, e.g. 'fix-typo' (or 'user:branch')."
    )
    base: str = Field(min_length=1, description="The branch to merge into, e.g. 'main'.")
    body: str | None = Field(default=None, description="The description, in Markdown.")
    draft: bool = Field(default=False, description="Open it as a draft.")


class MergePullArgs(_Args):
    """How to merge a pull request."""

    repo: Repo
    pull_number: Number = Field(description="The pull request's number, as shown after '#'.")
    merge_method: Literal["merge", "squash", "rebase"] = Field(
        default="merge", description="A merge commit, one squashed commit, or a rebase."
    )
    sha: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{40}$",
        description="Merge only if the head commit is still this SHA (40 hex digits).",
    )
    commit_title: str | None = Field(default=None, description="Title of the merge commit.")
    commit_message: str | None = Field(default=None, description="Extra text for the commit.")


class GetContentsArgs(_Args):
    """A file or directory of a repository."""

    repo: Repo
    path: Annotated[str, AfterValidator(_file_path)] = Field(
        description="Path inside the repository, e.g. 'README.md' or 'docs/guide.md'."
    )
    ref: str | None = Field(
        default=None, description="Branch, tag or commit; the default branch when left out."
    )


class AddCollaboratorArgs(_Args):
    """Whom to invite, and with what access."""

    repo: Repo
    username: Login
    permission: Literal["pull", "triage", "push", "maintain", "admin"] = Field(
        default="push",
        description="pull: read; triage: manage issues; push: write code; "
        "maintain: manage the repository; admin: everything.",
    )


class SearchIssuesArgs(_Args):
    """An issue and pull request search, limited to named repositories."""

    query: str = Field(
        min_length=1,
        max_length=256,
        description="GitHub search terms and qualifiers, e.g. 'crash is:issue is:open "
        "label:bug'. Include repo:owner/name or list the repositories in repos. "
        "OR and parentheses are not accepted.",
    )
    repos: list[Repo] = Field(
        default_factory=list,
        description="Repositories to search (owner/name); each is added as repo:owner/name.",
    )
    sort: Literal["comments", "reactions", "created", "updated"] | None = Field(
        default=None, description="Sort by this instead of best match."
    )
    order: Literal["asc", "desc"] | None = Field(
        default=None, description="Sort direction; used only with sort."
    )
    per_page: PerPage
    page: Page
