"""A small, stateful GitHub on loopback: the stand-in for api.github.com.

It serves the repositories, issues, comments, pull requests, files and
collaborators the tests need, and holds itself and its callers to GitHub's
published OpenAPI description (:mod:`.openapi`): every request is checked
(path and query parameters, JSON body) before it is served, and every answer
after. A mismatch is answered 422 like GitHub would, and recorded in
:attr:`GitHubStandIn.violations`, which the tests' fixture turns into a failure.

Only the vaulted token opens it: any other ``Authorization`` gets GitHub's
``401 Bad credentials``. Like GitHub it reads ``Bearer <t>`` and ``token <t>``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.providers.github import shapes
from tests.providers.github.openapi import OpenAPI, SpecOperation
from tests.providers.github.routes import ROUTES, ApiError
from vertex_tools.demo.server import LoopbackServer

__all__ = ["GitHubStandIn", "Issue", "Pull", "Received", "Repo"]

Json = dict[str, Any]
Answer = tuple[int, Any]
API_VERSION = "2022-11-28"


@dataclass
class Comment:
    """A comment on an issue or pull request."""

    uid: int
    body: str
    author: str
    created_at: str = field(default_factory=shapes.now)


@dataclass
class Issue:
    """An issue."""

    uid: int
    number: int
    title: str
    body: str | None
    author: str
    labels: list[Json] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)
    state: str = "open"
    state_reason: str | None = None
    comments: list[Comment] = field(default_factory=list)
    created_at: str = field(default_factory=shapes.now)
    updated_at: str = field(default_factory=shapes.now)
    closed_at: str | None = None


@dataclass
class Pull:
    """A pull request."""

    uid: int
    number: int
    title: str
    body: str | None
    author: str
    head: str
    base: str
    head_sha: str
    base_sha: str
    draft: bool = False
    state: str = "open"
    merged: bool = False
    merged_at: str | None = None
    merged_by: Json | None = None
    merge_commit_sha: str | None = None
    created_at: str = field(default_factory=shapes.now)
    updated_at: str = field(default_factory=shapes.now)
    closed_at: str | None = None


@dataclass
class Repo:
    """A repository: its files on the default branch, issues, pulls and people."""

    owner: str
    name: str
    uid: int
    description: str
    private: bool = True
    branches: set[str] = field(default_factory=lambda: {"main"})
    files: dict[str, bytes] = field(default_factory=dict)
    issues: dict[int, Issue] = field(default_factory=dict)
    pulls: dict[int, Pull] = field(default_factory=dict)
    collaborators: set[str] = field(default_factory=set)
    invited: set[str] = field(default_factory=set)

    @property
    def full_name(self) -> str:
        """owner/name."""
        return f"{self.owner}/{self.name}"

    def next_number(self) -> int:
        """Issues and pull requests share one sequence of numbers, as on GitHub."""
        return max([0, *self.issues, *self.pulls]) + 1


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the stand-in saw it."""

    method: str
    path: str
    query: str
    """As sent: still percent-encoded."""
    headers: dict[str, str]
    """Names in lower case (the last of repeated headers)."""
    body: bytes


class GitHubStandIn(LoopbackServer):
    """Runs the stand-in on 127.0.0.1 in a background thread with its own event loop."""

    def __init__(self, token: str, spec: OpenAPI, viewer: str = "octocat") -> None:
        super().__init__()
        self._accepted = {f"Bearer {token}", f"token {token}"}
        self.viewer = viewer
        """The login the token belongs to: the author of what the API creates."""
        self.spec = spec
        self.received: list[Received] = []
        self.violations: list[str] = []
        self.repos: dict[str, Repo] = {}
        self.users: dict[str, Json] = {}
        self._uid = 1000
        self._lock = threading.Lock()

    # state ------------------------------------------------------------------------------

    def uid(self) -> int:
        """A fresh id for an object."""
        with self._lock:
            self._uid += 1
            return self._uid

    def add_user(self, login: str, kind: str = "User") -> Json:
        """A GitHub account."""
        self.users[login] = shapes.user(login, self.uid(), kind)
        return self.users[login]

    def add_repo(self, full_name: str, description: str = "") -> Repo:
        """A repository owned by an existing account."""
        owner, name = full_name.split("/")
        repo = Repo(owner, name, self.uid(), description, collaborators={owner})
        self.repos[full_name] = repo
        return repo

    def add_issue(self, full_name: str, title: str, body: str | None, author: str) -> Issue:
        """An open issue."""
        repo = self.repos[full_name]
        issue = Issue(self.uid(), repo.next_number(), title, body, author)
        repo.issues[issue.number] = issue
        return issue

    def add_comment(self, full_name: str, number: int, body: str, author: str) -> Comment:
        """A comment on issue ``number``."""
        comment = Comment(self.uid(), body, author)
        self.repos[full_name].issues[number].comments.append(comment)
        return comment

    def add_pull(self, full_name: str, title: str, head: str, base: str, author: str) -> Pull:
        """An open pull request from branch ``head`` (created if missing) into ``base``."""
        repo = self.repos[full_name]
        repo.branches.add(head)
        number = repo.next_number()
        pull = Pull(
            self.uid(), number, title, None, author, head, base, _sha(f"{head}{number}"), _sha(base)
        )
        repo.pulls[number] = pull
        return pull

    def take_violations(self) -> list[str]:
        """The violations recorded since the last call."""
        with self._lock:
            found, self.violations = self.violations, []
        return found

    def last(self, method: str, path: str) -> Received:
        """The latest request with this method and path."""
        for got in reversed(self.received):
            if got.method == method and got.path == path:
                return got
        raise LookupError(f"the stand-in received no {method} {path}")

    # server -----------------------------------------------------------------------------

    async def make_app(self) -> web.Application:

        app = web.Application(middlewares=[self._not_found])
        for method, spec_path, handler in ROUTES:
            route_path = spec_path.replace("{path}", "{path:.+}")
            app.router.add_route(method, route_path, self._endpoint(method, spec_path, handler))
        return app

    @web.middleware
    async def _not_found(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPNotFound:
            self.violations.append(
                f"{request.method} {request.path}: the stand-in serves no such route"
            )
            return _json(404, shapes.error("Not Found", 404))

    def _endpoint(
        self,
        method: str,
        spec_path: str,
        handler: Callable[[GitHubStandIn, web.Request, Any], Awaitable[Answer]],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        operation = self.spec.operation(spec_path, method)

        async def serve(request: web.Request) -> web.Response:
            raw = await request.read()
            self.received.append(
                Received(
                    request.method,
                    request.raw_path.split("?", 1)[0],
                    request.rel_url.raw_query_string,
                    {k.lower(): v for k, v in request.headers.items()},
                    raw,
                )
            )
            status, payload = await self._serve(operation, handler, request, raw)
            response = _json(status, payload)
            # 5. our own answer, against the same description
            answer = response.body if isinstance(response.body, bytes) else b""
            ctype = response.content_type if payload is not None else ""
            self.violations.extend(operation.check_response(status, ctype, answer))
            return response

        return serve

    async def _serve(
        self,
        operation: SpecOperation,
        handler: Callable[[GitHubStandIn, web.Request, Any], Awaitable[Answer]],
        request: web.Request,
        raw: bytes,
    ) -> Answer:
        # 1. credentials: GitHub checks them before anything else
        if request.headers.get("Authorization") not in self._accepted:
            return 401, shapes.error("Bad credentials", 401)
        # 2. the API version GitHub is asked to speak
        version = request.headers.get("X-GitHub-Api-Version")
        if version is not None and version != API_VERSION:
            return 400, shapes.error(f"Unsupported API version {version}", 400)
        # 3. the request, against GitHub's description
        ctype = request.content_type if raw else ""
        problems = operation.check_request(request.match_info, request.query.items(), ctype, raw)
        if problems:
            self.violations.extend(problems)
            errors = [
                {"resource": operation.operation_id, "code": "invalid", "message": p[:200]}
                for p in problems
            ]
            return 422, shapes.error("Validation Failed", 422, errors=errors)
        # 4. the operation itself
        try:
            return await handler(self, request, json.loads(raw) if raw else None)
        except ApiError as exc:
            return exc.status, exc.payload


def _sha(seed: str) -> str:
    return shapes.blob_sha(seed.encode())


def _json(status: int, payload: Any) -> web.Response:
    if payload is None:
        return web.Response(status=status)
    return web.Response(
        status=status,
        body=json.dumps(payload).encode(),
        content_type="application/json",
        charset="utf-8",
    )
