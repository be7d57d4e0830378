"""One example call of each GitHub tool, allowed for the tests' ``maintainer`` grant
and served by the seeded stand-in (langchain_tests' ``tool_invoke_params_example``)."""

from __future__ import annotations

from typing import Any

__all__ = ["EXAMPLES"]

W = "acme/website"

EXAMPLES: dict[str, dict[str, Any]] = {
    "github_get_issue": {"repo": W, "issue_number": 1},
    "github_list_issues": {"repo": W, "state": "all", "labels": ["bug"]},
    "github_create_issue": {
        "repo": W,
        "title": "Checkout button overlaps the footer",
        "body": "Seen on a 320px wide screen.",
        "labels": ["bug"],
        "assignees": ["octocat"],
    },
    "github_update_issue": {"repo": W, "issue_number": 1, "body": "Also on Safari 18."},
    "github_comment_on_issue": {"repo": W, "issue_number": 1, "body": "Reproduced on 17.2."},
    "github_list_issue_comments": {"repo": W, "issue_number": 1, "per_page": 10},
    "github_get_pull_request": {"repo": W, "pull_number": 3},
    "github_list_pull_requests": {"repo": W, "state": "all", "base": "main"},
    "github_create_pull_request": {
        "repo": W,
        "title": "Fix the Safari crash, take two",
        "head": "fix-safari",
        "base": "main",
        "body": "Replaces the date parser.",
        "draft": True,
    },
    "github_merge_pull_request": {"repo": W, "pull_number": 4, "merge_method": "squash"},
    "github_get_file": {"repo": W, "path": "README.md"},
    "github_add_collaborator": {"repo": W, "username": "hubot", "permission": "triage"},
    "github_search_issues": {"query": "crash is:issue", "repos": [W]},
}
