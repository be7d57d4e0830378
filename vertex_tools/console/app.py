"""The console's routes, mounted by the broker under ``/console``.

Every request passes ``guard`` (in the order its docstring lists) before a route
runs. Reads come from the broker's own store and audit log; every change goes
through :class:`vertex_tools.admin.Admin`, as the CLI's do, so it is audited the
same way (actor ``console:<operator>``).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl

from vertex_tools.admin import Admin
from vertex_tools.broker.answers import Outgoing
from vertex_tools.broker.asgi import BodyTooLarge, Receive, read_body
from vertex_tools.console import approval_pages, guard, pages
from vertex_tools.console.chart import SpendBar
from vertex_tools.console.credentials import (
    SESSION_TTL,
    csrf_matches,
    csrf_token,
    new_form_nonce,
    session_hash,
)
from vertex_tools.console.timeline import ChainMonitor, ChainStatus, Filters, check_chain, timeline
from vertex_tools.errors import AuditUnavailable, ConsoleError, StoreError, VertexError
from vertex_tools.store import ConsoleSession, IdempotencyClaim

if TYPE_CHECKING:
    from vertex_tools.broker.runtime import Runtime

__all__ = ["PREFIX", "ConsoleApp"]

PREFIX = "/console"
MAX_FORM_BYTES = 16 * 1024
_FORM_TYPE = "application/x-www-form-urlencoded"
_TK_ID = r"tk_[a-z2-7]{16}"
_APPROVAL_ID = r"ap_[a-z2-7]{16}"
_NONCE = re.compile(r"[A-Za-z0-9_-]{22}")
_REVOKE = re.compile(rf"/console/tokens/({_TK_ID})/revoke")
_APPROVAL = re.compile(rf"/console/approvals/({_APPROVAL_ID})")
_DECIDE = re.compile(rf"/console/approvals/({_APPROVAL_ID})/decide")
_STATIC = {
    "/console/static/console.css": "text/css",
    "/console/static/console.js": "text/javascript",
}
_WINDOW = 86400.0

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, list[str]]
    form: dict[str, str]
    secure: bool


@dataclass(frozen=True, slots=True)
class _Session:
    session_id: str
    info: ConsoleSession

    @property
    def csrf(self) -> str:
        return csrf_token(self.session_id)

    @property
    def actor(self) -> str:
        return f"console:{self.info.operator}"


def _answer(status: int, body: bytes, *extra: tuple[str, str], kind: str = "text/html") -> Outgoing:
    headers = [("content-type", f"{kind}; charset=utf-8"), *guard.SECURITY_HEADERS, *extra]
    return Outgoing(status, headers, body)


def _redirect(location: str, *extra: tuple[str, str]) -> Outgoing:
    return _answer(303, b"", ("location", location), *extra)


def _refused(status: int, title: str, message: str, hint: str = "") -> Outgoing:
    return _answer(status, pages.error_page(title, message, hint=hint))


class ConsoleApp:
    """``handle(scope, receive)`` answers one request under ``/console``."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        home = runtime.config.home
        location = runtime.location
        self.chain = ChainMonitor(
            lambda: check_chain(
                lambda: location.open_audit(read_only=True),
                home.last_checkpoint,
                home.checkpoint_pub,
            )
        )

    async def handle(
        self, scope: MutableMapping[str, Any], receive: Receive, path: str
    ) -> Outgoing:
        """Guard, then route. Never raises for a bad request: it answers it."""
        headers = guard.header_map(scope["headers"])
        query_text = scope.get("query_string", b"").decode("latin-1")
        # 1 no agent credential, anywhere
        found = guard.agent_credential(headers, path + "?" + query_text)
        if found is not None:
            return _refused(
                403,
                "Not for agents",
                f"The console does not accept agent credentials, and this request carries "
                f"{found}. Agent tokens never work here.",
                "Operators sign in with a link from `vertex console`; send no Authorization "
                "or X-Vertex-* header.",
            )
        # 2 method
        method = scope["method"]
        if method not in ("GET", "POST"):
            return _answer(
                405,
                pages.error_page("Method not allowed", f"{method} is not used by the console."),
                ("allow", "GET, POST"),
            )
        form: dict[str, str] = {}
        if method == "POST":
            # JSON, multipart or text/plain is not what the console's forms send (and
            # text/plain is what a cross-site "simple" request would use).
            kinds = {k.split(";", 1)[0].strip().lower() for k in headers.get("content-type", [])}
            if kinds - {_FORM_TYPE}:
                return _refused(415, "Not a form", f"The console takes only {_FORM_TYPE} bodies.")
            try:
                async with asyncio.timeout(10):
                    raw = await read_body(scope, receive, MAX_FORM_BYTES)
            except TimeoutError:
                return _refused(408, "Too slow", "The form did not arrive in time.")
            except BodyTooLarge:
                return _refused(413, "Too large", "The form is larger than the console accepts.")
            fields = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
            form = dict(fields)
            if len(form) != len(fields):
                # Which of two csrf, grant or decision values counts is a guess the
                # console does not make: the page's own forms send each field once.
                twice = sorted(k for k, n in Counter(k for k, _ in fields).items() if n > 1)
                return _refused(
                    400, "Bad request", f"The form repeats {', '.join(twice)}: send each once."
                )
        request = _Request(
            method,
            path,
            dict(parse_qsl(query_text, keep_blank_values=True)),
            headers,
            form,
            scope.get("scheme") == "https",
        )
        try:
            return await self._route(request)
        except AuditUnavailable:
            return _refused(
                503,
                "Audit log unavailable",
                "The audit log cannot be written, so the console changes nothing.",
                "Check the broker's disk and audit log; `vertex audit verify`.",
            )
        except StoreError as exc:
            return _refused(503, "Store unavailable", f"The state database failed: {exc}")

    # routing ------------------------------------------------------------------------------

    async def _route(self, req: _Request) -> Outgoing:
        if req.path in _STATIC and req.method == "GET":
            name = req.path.rsplit("/", 1)[1]
            data = resources.files("vertex_tools.console").joinpath("static", name).read_bytes()
            return _answer(200, data, kind=_STATIC[req.path])
        if req.path == "/console/login":
            return await self._login(req)
        if req.method == "POST":
            refusal = guard.same_origin(req.headers)
            if refusal is not None:
                return _refused(
                    403, "Refused", f"Refused: {refusal}.", "Use the console's own forms."
                )
        session = await self._session(req)
        if session is None:
            if req.path == "/console/audit.json":
                return _answer(
                    401,
                    b'{"error": "not signed in: run `vertex console`"}',
                    kind="application/json",
                )
            return _redirect("/console/login")
        if req.method == "POST" and not csrf_matches(session.session_id, req.form.get("csrf", "")):
            return _refused(
                403,
                "Refused",
                "Refused: the form's CSRF token is missing or wrong.",
                "Reload the page and submit the form again.",
            )
        return await self._signed_in(req, session)

    async def _signed_in(self, req: _Request, session: _Session) -> Outgoing:
        get, post = req.method == "GET", req.method == "POST"
        if req.path in ("/console", "/console/") and get:
            return _redirect("/console/audit")
        if req.path == "/console/audit" and get:
            return await self._audit(req, session)
        if req.path == "/console/audit.json" and get:
            return await self._audit_feed(req)
        if req.path == "/console/tokens" and get:
            revoked = req.query.get("revoked", "")
            notice = ""
            if re.fullmatch(_TK_ID, revoked):
                notice = f"Revoked {revoked}: its next request is refused."
            return await self._tokens(session, notice=notice)
        if req.path == "/console/tokens" and post:
            return await self._issue(req, session)
        if req.path == "/console/approvals" and get:
            return await self._approvals(session)
        if req.path == "/console/spend" and get:
            return await self._spend(session)
        if req.path == "/console/logout" and post:
            await self._admin(session.actor, lambda a: a.console_logout(session.session_id))
            return _redirect("/console/login", guard.clear_cookie())
        if (match := _REVOKE.fullmatch(req.path)) is not None:
            return await self._revoke(req, session, match.group(1))
        if (match := _APPROVAL.fullmatch(req.path)) is not None and get:
            return await self._approval(session, match.group(1))
        if (match := _DECIDE.fullmatch(req.path)) is not None and post:
            return await self._decide(req, session, match.group(1))
        return _refused(404, "Not found", f"The console has no page {req.path}.")

    # sessions -----------------------------------------------------------------------------

    async def _session(self, req: _Request) -> _Session | None:
        session_id = guard.session_cookie(req.headers)
        if session_id is None:
            return None
        store = self.rt.store
        assert store is not None
        hashed, now = session_hash(session_id), self.rt.clock()
        info = await self.rt.db(lambda: store.get_console_session(hashed, now))
        return None if info is None else _Session(session_id, info)

    async def _admin(self, actor: str, action: Callable[[Admin], T]) -> T:
        """Run an operator action the way the CLI does: its own Admin, audited."""
        config, location = self.rt.config, self.rt.location

        def run() -> T:
            with Admin(config.home, config.environ, store=location, actor=actor) as admin:
                return action(admin)

        return await asyncio.to_thread(run)

    async def _login(self, req: _Request) -> Outgoing:
        if req.method == "GET":
            return _answer(200, pages.login_page(req.query.get("code")))
        refusal = guard.same_origin(req.headers)
        if refusal is not None:
            return _refused(403, "Refused", f"Refused: {refusal}.", "Open the sign-in link again.")
        code = req.form.get("code", "")
        try:
            session_id, _info = await self._admin("console", lambda a: a.console_login(code))
        except ConsoleError as exc:
            return _refused(403, "Sign-in refused", str(exc))
        return _redirect("/console/audit", guard.set_cookie(session_id, secure=req.secure))

    # pages --------------------------------------------------------------------------------

    async def _audit(self, req: _Request, session: _Session) -> Outgoing:
        filters = Filters.from_query(req.query)
        rows, _head = await self._timeline(filters)
        chain = await self.chain.status()
        page = pages.audit_page(
            rows, filters, chain, csrf=session.csrf, operator=session.info.operator
        )
        return _answer(200, page)

    async def _audit_feed(self, req: _Request) -> Outgoing:
        rows, head = await self._timeline(Filters.from_query(req.query))
        chain: ChainStatus | None = await self.chain.status(wait=0.5)
        data = {
            "head": head,
            "rows": [r.to_json() for r in rows],
            "chain": None if chain is None else chain.to_json(),
        }
        return _answer(200, json.dumps(data).encode(), kind="application/json")

    async def _timeline(self, filters: Filters) -> tuple[list[Any], int]:
        location = self.rt.location

        def read() -> tuple[list[Any], int]:
            with location.open_audit(read_only=True) as log:
                rows, head = timeline(log, filters)
                return list(rows), head

        return await asyncio.to_thread(read)

    async def _tokens(
        self, session: _Session, *, notice: str = "", error: str = "", status: int = 400
    ) -> Outgoing:
        store = self.rt.store
        assert store is not None
        tokens = await self.rt.db(store.list_tokens)
        grants = sorted(self.rt.loaded.policy.grants)
        page = pages.tokens_page(
            tokens,
            grants,
            csrf=session.csrf,
            operator=session.info.operator,
            once=new_form_nonce(),
            notice=notice,
            error=error,
        )
        return _answer(200 if not error else status, page)

    async def _issue(self, req: _Request, session: _Session) -> Outgoing:
        loaded = self.rt.loaded
        grant, ttl = req.form.get("grant", ""), req.form.get("ttl", "").strip() or None
        once = req.form.get("once", "")
        if _NONCE.fullmatch(once) is None:
            return await self._tokens(
                session, error="The issue form is incomplete: issue the token from this page."
            )
        # Each rendering of the form issues at most one token, on every replica: a reload
        # of the result page (or Back and submit) would otherwise issue a second token
        # silently. The claim lives in the store's idempotency table under a key no agent
        # token id can take (``console:`` and the session's hash).
        store, now = self.rt.store, self.rt.clock()
        assert store is not None
        owner = f"console:{session_hash(session.session_id)}"
        claim = await self.rt.db(
            lambda: store.claim_idempotency(owner, once, "token_issue", now, SESSION_TTL)
        )
        if claim is not IdempotencyClaim.NEW:
            return await self._tokens(
                session,
                error="This form has already issued a token, shown once and not again. "
                "Issue another here if you need one; revoke the first if it was lost.",
                status=409,
            )
        try:
            issued = await self._admin(session.actor, lambda a: a.token_issue(loaded, grant, ttl))
        except AuditUnavailable:
            raise
        except VertexError as exc:
            return await self._tokens(session, error=str(exc))
        page = pages.token_issued_page(issued, csrf=session.csrf, operator=session.info.operator)
        return _answer(200, page)

    async def _revoke(self, req: _Request, session: _Session, token_id: str) -> Outgoing:
        store = self.rt.store
        assert store is not None
        record = await self.rt.db(lambda: store.get_token(token_id))
        if record is None:
            return _refused(404, "Not found", f"There is no token {token_id}.")
        if req.method == "GET":
            page = pages.revoke_page(record, csrf=session.csrf, operator=session.info.operator)
            return _answer(200, page)
        await self._admin(session.actor, lambda a: a.token_revoke(token_id))
        return _redirect(f"/console/tokens?revoked={token_id}")

    async def _approvals(self, session: _Session) -> Outgoing:
        store = self.rt.store
        assert store is not None
        records = await self.rt.db(lambda: store.list_approvals(None))
        page = approval_pages.approvals_page(
            records, csrf=session.csrf, operator=session.info.operator
        )
        return _answer(200, page)

    async def _approval(self, session: _Session, approval_id: str) -> Outgoing:
        store = self.rt.store
        assert store is not None
        record = await self.rt.db(lambda: store.get_approval(approval_id))
        if record is None:
            return _refused(404, "Not found", f"There is no approval {approval_id}.")
        page = approval_pages.approval_page(
            record, csrf=session.csrf, operator=session.info.operator
        )
        return _answer(200, page)

    async def _decide(self, req: _Request, session: _Session, approval_id: str) -> Outgoing:
        decision = req.form.get("decision")
        if decision not in ("approve", "deny"):
            return _refused(400, "Bad request", "The form must say approve or deny.")
        note = req.form.get("note", "").strip()[:500] or None
        try:
            await self._admin(
                session.actor,
                lambda a: a.approval_decide(approval_id, approve=decision == "approve", note=note),
            )
        except AuditUnavailable:
            raise
        except VertexError as exc:
            return _refused(409, "Not decided", str(exc), "Reload the approval to see its state.")
        return _redirect(f"/console/approvals/{approval_id}")

    async def _spend(self, session: _Session) -> Outgoing:
        store = self.rt.store
        assert store is not None
        grants = self.rt.loaded.policy.grants
        since = self.rt.clock() - _WINDOW

        def read() -> list[SpendBar]:
            bars = []
            for name in sorted(grants):
                spend = grants[name].spend
                if spend is None:
                    continue
                spent = store.spend_used(name, spend.currency, since)
                bars.append(SpendBar(name, spend.currency, spent, spend.per_day, spend.per_call))
            return bars

        bars = await self.rt.db(read)
        return _answer(
            200, pages.spend_page(bars, csrf=session.csrf, operator=session.info.operator)
        )
