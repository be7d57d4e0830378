"""The path of one call through the broker (DESIGN.md, "The path of one call").

    1 authenticate   token id, signature, timestamp, expiry, revocation   auth.py
    1b agent key     an agent's idempotency key bound to its request      agent_keys.py
    2 resolve+decide policy engine, in memory                              policy/engine.py
    3 admit          nonce, rate, spend reservation: one transaction,      admitter.py
                     group-committed with concurrent requests
    4 audit intent   appended BEFORE anything leaves; failure -> 503
    5 inject         vaulted secret into the configured header; every
                     agent-supplied credential header was dropped          headers.py
    6 forward        pinned address, no redirects, no env proxies          forward.py
    7 scrub          secret values out of the response                     scrub.py
    8 audit outcome  status, latency, spend committed or released; queued,
                     committed after the answer is sent (``_outcome``)

Invariants:

* nothing is forwarded without an intent entry already durable;
* every request gets exactly one intent and one outcome entry, unless the
  audit log itself fails (then nothing is forwarded);
* one policy snapshot decides and forwards a request, even across a reload;
* a spend reservation is committed on a 2xx, released only when the request
  certainly never reached the upstream or the upstream answered a failure,
  and otherwise held (it may have been acted on);
* nothing that leaves the broker after the secret is injected (response,
  refusal message) is unscrubbed; no token value is written to the audit log.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import blake3

from vertex_tools.audit import EntryKind
from vertex_tools.broker.admission import admission_for, single_headers
from vertex_tools.broker.agent_keys import claim_agent_key
from vertex_tools.broker.answers import (
    TOKEN_IN_BYTES,
    TOKEN_IN_TEXT,
    Outgoing,
    redact_tokens,
    refusal,
)
from vertex_tools.broker.auth import AuthResult, TokenLookup, authenticate
from vertex_tools.broker.headers import (
    REQUEST_HEADER_ALLOWLIST,
    clean_response_headers,
    forwardable_request_headers,
)
from vertex_tools.broker.hold import hold_step, remember_sent, remember_served, serves_untrusted
from vertex_tools.broker.idempotency import idempotency_for
from vertex_tools.broker.lookup import resolve_lookup
from vertex_tools.broker.loopread import Fallback
from vertex_tools.broker.runtime import Runtime
from vertex_tools.broker.scrub import Scrubber
from vertex_tools.broker.taint_gate import read_report, run_key
from vertex_tools.decision import Decision, Reason
from vertex_tools.errors import (
    AuditUnavailable,
    ConfigError,
    RequestRejected,
    StoreError,
    UpstreamBlocked,
    UpstreamError,
    UpstreamTimeout,
    VaultError,
)
from vertex_tools.policy import LoadedPolicy
from vertex_tools.policy.engine import RequestFacts, Resolved, Verdict, decide
from vertex_tools.store import Admission, AdmissionResult, SqliteStore
from vertex_tools.tokens import TokenRecord
from vertex_tools.vault import SecretValue

__all__ = ["Incoming", "Outgoing", "Pipeline", "refusal"]

log = logging.getLogger("vertex_tools.broker")
_REMEMBER_INLINE_BYTES = 4096
"""Answers up to this size are remembered on the event loop: indexing a small answer
(~25 us) costs less than the hop to a worker thread (~100 us); larger ones go to a thread."""
_UPSTREAM = re.compile(r"^/proxy/([a-z0-9][a-z0-9._-]{0,63})(/.*)\Z")
# A vertex token anywhere in a URL (also percent-encoded dots): never logged, never sent.


@dataclass(frozen=True, slots=True)
class Incoming:
    """A request as the ASGI server handed it over, body fully read."""

    method: str
    raw_path: str
    query: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    too_large: bool = False
    timed_out: bool = False


@dataclass(slots=True)
class _Call:
    request_id: str
    incoming: Incoming
    loaded: LoadedPolicy
    upstream: str = ""
    path: str = ""
    entry: dict[str, Any] = field(default_factory=dict)
    reservation: int | None = None
    nonce_logged: bool = False
    """The nonce is in ``entry``: its admission may commit without a flush, so if no
    intent can be written the state store is flushed before the 503 goes out."""
    intent_written: bool = False
    outcome_written: bool = False
    scrubber: Scrubber | None = None
    query: str | None = None
    body: bytes | None = None
    resolved: Resolved | None = None
    facts: RequestFacts | None = None
    run: tuple[str, str] = ("", "-")
    """(token id, run id): whose memory of served untrusted content this call reads."""
    secret: SecretValue | Exception | None = None
    """The upstream's vault entry, read with authentication (or why it could not be)."""


class _RequestIds:
    """16 hex digits from the OS's CSPRNG per request, read 512 ids at a time: one
    ``getrandom`` call per request was a visible share of the event loop's time."""

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def next(self) -> str:
        if self._at >= len(self._pool):
            self._pool, self._at = secrets.token_bytes(8 * 512), 0
        self._at += 8
        return self._pool[self._at - 8 : self._at].hex()


class Pipeline:
    """Runs requests through the steps above."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self._scrubbers: dict[bytes, Scrubber] = {}
        self._request_ids = _RequestIds()

    async def handle(self, incoming: Incoming) -> Outgoing:
        """Handle one ``/proxy/...`` request. Never raises."""
        call = _Call(self._request_ids.next(), incoming, self.rt.loaded)
        try:
            return await self._handle(call)
        except Exception:
            log.exception("unexpected error in the pipeline (request %s)", call.request_id)
            decision = Decision.deny(
                Reason.INTERNAL_ERROR, "broker", "internal broker error; see the broker's log"
            )
            try:
                if call.reservation is not None and not call.intent_written:
                    await self._settle(call, commit=False)
                if not call.intent_written:
                    return await self._refuse(call, decision)
                if not call.outcome_written:
                    self._outcome(call, 500, decision.reason, spend=None)
            except Exception:
                log.exception("could not record the internal error of %s", call.request_id)
            return refusal(decision, call.request_id)

    async def _handle(self, call: _Call) -> Outgoing:
        rt = self.rt
        incoming = call.incoming
        policy = call.loaded.policy
        now = rt.clock()
        call.entry = {
            "request_id": call.request_id,
            "method": incoming.method,
            "path": redact_tokens(incoming.raw_path[:2048]),
            "query": redact_tokens(incoming.query[:2048]),
            "policy": call.loaded.digest[:16],
            "broker": rt.instance,
        }
        if incoming.too_large:
            limit = policy.settings.max_request_bytes
            return await self._refuse(
                call,
                Decision.deny(
                    Reason.REQUEST_TOO_LARGE,
                    "settings.max_request_bytes",
                    f"the request body is larger than {limit} bytes",
                ),
            )
        if incoming.timed_out:
            return await self._refuse(
                call,
                Decision.deny(
                    Reason.REQUEST_TIMEOUT,
                    "settings.read_timeout",
                    "the request body did not arrive within settings.read_timeout",
                ),
            )
        if TOKEN_IN_TEXT.search(incoming.raw_path) or TOKEN_IN_TEXT.search(incoming.query):
            return await self._refuse(
                call,
                Decision.deny(
                    Reason.TOKEN_IN_URL,
                    "authentication",
                    "a vertex token was put in the URL, where logs and upstreams see it; "
                    "it was not forwarded: revoke it (vertex token revoke) and send tokens "
                    "only in the Authorization header",
                ),
            )
        if TOKEN_IN_BYTES.search(incoming.body):
            return await self._refuse(
                call,
                Decision.deny(
                    Reason.TOKEN_IN_BODY,
                    "authentication",
                    "the request body holds a vertex token, which the upstream would receive "
                    "and may store or show; it was not forwarded: revoke it (vertex token "
                    "revoke), and find what put it there (a prompt injection can ask for it)",
                ),
            )
        match = _UPSTREAM.match(incoming.raw_path)
        if match is None:
            return await self._refuse(
                call,
                Decision.deny(
                    Reason.BAD_REQUEST, "routing", "use /proxy/<upstream>/<path> on the broker"
                ),
            )
        call.upstream, call.path = match.group(1), match.group(2)
        call.entry.update(upstream=call.upstream, path=call.path)

        try:
            headers = single_headers(incoming.headers)
        except RequestRejected as exc:
            return await self._refuse(call, Decision.deny(Reason.BAD_REQUEST, "headers", str(exc)))
        all_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in incoming.headers]
        target = incoming.raw_path + ("?" + incoming.query if incoming.query else "")

        # 1 authenticate
        store = rt.store
        assert store is not None
        named = policy.upstreams.get(call.upstream)

        def check(lookup: TokenLookup) -> AuthResult:
            return authenticate(
                policy=policy,
                lookup=lookup,
                method=incoming.method,
                target=target,
                headers=headers,
                all_headers=all_headers,
                body=incoming.body,
                now=now,
            )

        def authenticate_and_read() -> tuple[AuthResult, SecretValue | Exception | None]:
            found = check(store.get_token)
            if found.record is None or named is None:
                return found, None
            # Step 5's vault read, in the same trip to the database thread, for a
            # caller who proved who they are: nothing leaves before step 6 anyway,
            # and a refused call only read what it did not use.
            try:
                return found, rt.read_secret(named.secret)
            except (VaultError, StoreError) as exc:
                return found, exc

        found = self._authenticate_on_loop(call, check)
        if found is not None:
            auth = found
        else:
            try:
                auth, call.secret = await rt.db(authenticate_and_read)
            except StoreError as exc:
                log.error("state database failed: %s", exc)
                return await self._refuse(call, _store_down())
        call.entry.update(token_id=auth.claimed_id, auth=auth.mode)
        if auth.record is None:
            return await self._refuse(call, auth.decision)
        record = auth.record
        call.entry["grant"] = record.grant
        if auth.nonce is not None:
            # In every entry of this call from here on (the intent is durable before
            # anything is forwarded or answered): the start of the next broker puts
            # the nonce back if a power cut lost its NORMAL commit (docs/durability.md).
            call.entry["nonce"] = auth.nonce
            call.nonce_logged = True
        report = read_report(headers)
        if isinstance(report, Decision):
            return await self._refuse_admitted(call, auth, now, report)
        grant_rules = policy.grants.get(record.grant)
        call.run = run_key(
            record.token_id,
            headers,
            report,
            scope=grant_rules.taint.scope if grant_rules is not None else "token",
        )
        if call.run[1] != "-":
            call.entry["run"] = call.run[1]

        # 1b an agent's idempotency key: bound to this request, or refused if reused
        refused, claim = await claim_agent_key(
            rt,
            policy=policy,
            upstream=call.upstream,
            method=incoming.method,
            path=call.path,
            query=incoming.query,
            headers=incoming.headers,
            content_type=headers.get("content-type", "").lower(),
            body=incoming.body,
            token_id=record.token_id,
            now=now,
        )
        if claim is not None:
            call.entry["idempotency"] = claim.value
        if refused is not None:
            return await self._refuse(call, refused)

        # 2 resolve and decide
        facts = RequestFacts(
            upstream=call.upstream,
            method=incoming.method,
            path=call.path,
            query=incoming.query,
            content_type=headers.get("content-type", "").lower(),
            body=incoming.body,
            headers=tuple(
                (k.lower(), v) for k, v in all_headers if k.lower() in REQUEST_HEADER_ALLOWLIST
            ),
        )
        call.facts = facts
        verdict: Verdict = decide(policy, record.grant, facts)
        if verdict.resolved is not None and verdict.resolved.lookup is not None:
            # The look-up leaves the broker: spend the nonce first, so a replayed
            # request cannot make the broker read anything. No intent is written
            # before the look-up, so this nonce waits for the disk (not nonce_logged).
            nonce_only = Admission(
                token_id=record.token_id,
                now=now,
                nonce=auth.nonce,
                nonce_expires=now + 2 * policy.settings.clock_skew_seconds + 1,
            )
            try:
                first: AdmissionResult = await rt.admitter.admit(nonce_only)
            except StoreError as exc:
                log.error("state database failed: %s", exc)
                return await self._refuse(call, _store_down())
            if not first.admitted:
                assert first.reason is not None
                return await self._refuse(
                    call, Decision.deny(first.reason, first.rule, first.message)
                )
            auth = replace(auth, nonce=None)
            verdict = await resolve_lookup(
                rt,
                request_id=call.request_id,
                upstream_name=call.upstream,
                policy=call.loaded.policy,
                verdict=verdict,
            )
            if verdict.resolved is not None:
                call.entry["amount_source"] = "lookup"
        if verdict.resolved is not None:
            resolved = verdict.resolved
            call.entry.update(operation=resolved.operation, risk=resolved.risk.value)
            if resolved.amount is not None:
                call.entry.update(amount=resolved.amount.value, currency=resolved.amount.currency)

        # 3 admit: the nonce always (a refused request cannot be replayed either),
        #   rate and spend only for what policy allowed
        admission = admission_for(
            policy_grant=policy.grants.get(record.grant),
            auth=auth,
            now=now,
            verdict=verdict,
            skew=policy.settings.clock_skew_seconds,
        )
        if admission.nonce is not None:
            admission = replace(admission, nonce_logged=True)
        try:
            admitted: AdmissionResult = await rt.admitter.admit(admission)
        except StoreError as exc:
            log.error("state database failed: %s", exc)
            return await self._refuse(call, _store_down())
        if not admitted.admitted:
            assert admitted.reason is not None
            decision = Decision.deny(admitted.reason, admitted.rule, admitted.message)
            return await self._refuse(call, decision, retry_after=admitted.retry_after)
        if not verdict.decision.allowed:
            return await self._refuse(call, verdict.decision)
        call.reservation = admitted.reservation
        if verdict.resolved is not None and verdict.resolved.query is not None:
            call.query = verdict.resolved.query
            call.entry["forwarded_query"] = redact_tokens(call.query[:2048])
        if verdict.resolved is not None and verdict.resolved.body is not None:
            call.body = verdict.resolved.body
        call.resolved = verdict.resolved
        if verdict.resolved is not None:
            # 3b taint, and a human's approval for what it holds
            held = await hold_step(
                rt,
                policy=policy,
                grant_name=record.grant,
                token_id=record.token_id,
                request_id=call.request_id,
                resolved=verdict.resolved,
                facts=facts,
                query=call.query if call.query is not None else incoming.query,
                body=call.body if call.body is not None else incoming.body,
                report=report,
                key=call.run,
            )
            call.entry.update(held.entry)
            if held.decision is not None:
                await self._settle(call, commit=False)
                return await self._refuse(call, held.decision)
        remember_sent(rt, policy=policy, facts=facts, key=call.run)
        return await self._forward(call, verdict.decision)

    def _authenticate_on_loop(
        self, call: _Call, check: Callable[[TokenLookup], AuthResult]
    ) -> AuthResult | None:
        """Step 1 (``check`` with a token look-up) with the loop's own reads
        (loopread.py), and the vault entry if it is remembered for the row stored now;
        None: do it on the database thread."""
        reader = self.rt.reader
        if reader is None:
            return None
        policy = call.loaded.policy
        named = policy.upstreams.get(call.upstream)
        name = named.secret if named is not None else None
        secrets_read: list[SecretValue | None] = []

        def lookup(token_id: str) -> TokenRecord | None:
            record, value = reader.token_and_secret(token_id, name)
            secrets_read.append(value)
            return record

        try:
            found = check(lookup)
        except Fallback:
            return None
        if found.record is not None and secrets_read:
            # None when not remembered: step 5 opens it on the database thread.
            call.secret = secrets_read[-1]
        return found

    async def _refuse_admitted(
        self, call: _Call, auth: AuthResult, now: float, decision: Decision
    ) -> Outgoing:
        """Refuse an authenticated request, spending its nonce so it cannot be replayed."""
        assert auth.record is not None
        skew = call.loaded.policy.settings.clock_skew_seconds
        nonce_only = Admission(
            token_id=auth.record.token_id,
            now=now,
            nonce=auth.nonce,
            nonce_expires=now + 2 * skew + 1,
            nonce_logged=True,  # in call.entry: _refuse commits it before answering
        )
        store = self.rt.store
        assert store is not None
        try:
            await self.rt.admitter.admit(nonce_only)
        except StoreError as exc:
            log.error("state database failed: %s", exc)
            return await self._refuse(call, _store_down())
        return await self._refuse(call, decision)

    async def _refuse(
        self, call: _Call, decision: Decision, *, retry_after: float | None = None
    ) -> Outgoing:
        call.entry.update(decision.to_json())
        try:
            await self.rt.audit.append(EntryKind.INTENT, call.entry)
        except AuditUnavailable as exc:
            return await self._audit_failed(call, exc)
        call.intent_written = True
        answer = refusal(decision, call.request_id, retry_after=retry_after)
        self._outcome(call, answer.status, decision.reason, spend=None)
        return answer

    async def _audit_failed(self, call: _Call, exc: AuditUnavailable) -> Outgoing:
        """503 for a call whose intent could not be written. Its nonce may have been
        committed without a flush, counting on that intent: flush the state store
        first, so a power cut cannot make the refused request replayable."""
        store = self.rt.store
        if call.nonce_logged and isinstance(store, SqliteStore):
            try:
                await self.rt.db(store.sync)
            except StoreError as sync_failed:
                log.error("state database failed: %s", sync_failed)
        return self._audit_down(call, exc)

    def _audit_down(self, call: _Call, exc: AuditUnavailable) -> Outgoing:
        log.error("audit log unavailable, refusing request %s: %s", call.request_id, exc)
        return refusal(
            Decision.deny(
                Reason.AUDIT_UNAVAILABLE,
                "audit",
                "the audit log cannot be written, so the broker forwards nothing; "
                "an operator must check the broker's disk and audit.db",
            ),
            call.request_id,
        )

    def _outcome(
        self, call: _Call, status: int, reason: Reason, *, spend: str | None, latency_us: int = 0
    ) -> None:
        """Queue step 8's entry; the answer goes out without waiting for its commit.

        The intent was durable before anything left, and what the outcome says
        is already settled (spend included), so holding the answer for another
        disk flush would only add latency. The entry is queued at once, behind
        the intent, and committed with the next entry (another request's intent)
        or after ``OUTCOME_DEFER_S`` at the latest (``Runtime``); the writer's
        ``aclose()`` (broker shutdown) writes every queued entry. If the broker
        dies first, the intent is left open and the next broker's start records
        it as ``orphaned`` (reconcile.py), with any spend ``held``: the call is
        never unaccounted for, only its status is lost. A failed commit is
        logged, as it was when the answer waited for it.
        """
        data: dict[str, Any] = {
            "request_id": call.request_id,
            "status": status,
            "reason": reason.value,
            "latency_us": latency_us,
        }
        if spend is not None:
            data["spend"] = spend
        try:
            written = self.rt.audit.submit(EntryKind.OUTCOME, data, defer=True)
        except AuditUnavailable as exc:
            log.error("outcome of %s not recorded: %s", call.request_id, exc)
            return
        call.outcome_written = True
        written.add_done_callback(functools.partial(_outcome_committed, call.request_id))

    async def _settle(self, call: _Call, *, commit: bool) -> str | None:
        if call.reservation is None:
            return None
        reservation, store = call.reservation, self.rt.store
        call.reservation = None
        assert store is not None
        now = self.rt.clock()
        try:
            await self.rt.db(lambda: store.settle(reservation, commit=commit, now=now))
        except StoreError as exc:
            log.error("spend reservation %s not settled: %s", reservation, exc)
            return "unsettled"
        return "committed" if commit else "released"

    async def _fail(self, call: _Call, decision: Decision, *, maybe_delivered: bool) -> Outgoing:
        if maybe_delivered:
            # The upstream may have acted on it: the amount stays reserved (counted
            # against the ceiling) rather than being handed back.
            spend = "held" if call.reservation is not None else None
            call.reservation = None
        else:
            spend = await self._settle(call, commit=False)
        if call.scrubber is not None:
            decision = Decision(
                decision.effect,
                decision.reason,
                decision.rule,
                call.scrubber.scrub_text(decision.message),
            )
        answer = refusal(decision, call.request_id)
        self._outcome(call, answer.status, decision.reason, spend=spend)
        return answer

    async def _forward(self, call: _Call, decision: Decision) -> Outgoing:
        rt = self.rt
        upstream = call.loaded.policy.upstreams[call.upstream]
        call.entry.update(decision.to_json())
        idempotency = idempotency_for(
            call.incoming.method,
            call.incoming.headers,
            upstream.provider,
            request_id=call.request_id,
            token_id=str(call.entry.get("token_id")),
        )
        if idempotency is not None:
            call.entry["idempotency_key"] = idempotency[1]
        # 5 (read) the vault entry, read with authentication (step 1); else now, on
        #   the database thread while the intent commits: nothing leaves the broker
        #   until both are done, so the order of the two waits changes only latency.
        secret_read: asyncio.Future[SecretValue] = (
            rt.secret(upstream.secret) if call.secret is None else _done(call.secret)
        )
        call.secret = None
        # 4 audit intent, durable before anything leaves
        try:
            await rt.audit.append(EntryKind.INTENT, call.entry)
        except AuditUnavailable as exc:
            secret_read.add_done_callback(_drop_result)
            await self._settle(call, commit=False)
            return await self._audit_failed(call, exc)
        except BaseException:
            secret_read.add_done_callback(_drop_result)
            raise
        call.intent_written = True

        # 5 inject
        try:
            secret = await secret_read
        except (VaultError, StoreError) as exc:
            log.error("vault entry %r unavailable: %s", upstream.secret, type(exc).__name__)
            return await self._fail(
                call,
                Decision.deny(
                    Reason.SECRET_UNAVAILABLE,
                    f"upstreams.{call.upstream}.secret",
                    f"the vault entry {upstream.secret!r} is missing or unreadable; an operator "
                    f"can run `vertex vault put {upstream.secret} --provider "
                    f"{upstream.provider}`",
                ),
                maybe_delivered=False,
            )
        value = secret.reveal()
        # Built before anything leaves: if the response could not be scrubbed, nothing is sent.
        try:
            call.scrubber = self._scrubber(value)
        except ConfigError:
            return await self._fail(
                call,
                Decision.deny(
                    Reason.SECRET_UNAVAILABLE,
                    f"upstreams.{call.upstream}.secret",
                    f"the vault entry {upstream.secret!r} cannot be scrubbed from responses "
                    "safely; vault a different secret value",
                ),
                maybe_delivered=False,
            )
        try:
            out_headers = forwardable_request_headers(call.incoming.headers)
        except RequestRejected as exc:
            return await self._fail(
                call, Decision.deny(Reason.BAD_REQUEST, "headers", str(exc)), maybe_delivered=False
            )
        out_headers.extend(
            (header, fmt.replace("{secret}", value)) for header, fmt in upstream.injections
        )
        if idempotency is not None:
            out_headers.append(idempotency)

        # 6 forward
        try:
            response = await rt.forwarder.forward(
                upstream.url,
                method=call.incoming.method,
                path=call.path,
                query=call.query if call.query is not None else call.incoming.query,
                headers=out_headers,
                body=call.body if call.body is not None else call.incoming.body,
            )
        except UpstreamBlocked as exc:
            reason, rule = Reason.UPSTREAM_BLOCKED, "settings.allow_private_upstreams"
            return await self._fail(
                call, Decision.deny(reason, rule, str(exc)), maybe_delivered=False
            )
        except UpstreamTimeout as exc:
            reason, rule = Reason.UPSTREAM_TIMEOUT, f"upstreams.{call.upstream}"
            return await self._fail(
                call, Decision.deny(reason, rule, str(exc)), maybe_delivered=exc.maybe_delivered
            )
        except UpstreamError as exc:
            reason, rule = Reason.UPSTREAM_FAILED, f"upstreams.{call.upstream}"
            return await self._fail(
                call, Decision.deny(reason, rule, str(exc)), maybe_delivered=exc.maybe_delivered
            )

        # 7 scrub
        scrubber = call.scrubber
        body = scrubber.scrub_bytes(response.body)
        headers = scrubber.scrub_headers(clean_response_headers(response.headers))
        headers += [("vertex-decision", "allow"), ("vertex-request-id", call.request_id)]

        if (
            200 <= response.status < 300
            and call.facts is not None
            and serves_untrusted(call.loaded.policy, call.facts, call.resolved)
        ):
            remember = functools.partial(
                remember_served,
                rt,
                policy=call.loaded.policy,
                facts=call.facts,
                resolved=call.resolved,
                key=call.run,
                content_type=dict(headers).get("content-type", ""),
                body=body,
            )
            if len(body) <= _REMEMBER_INLINE_BYTES:
                remember()
            else:
                await asyncio.to_thread(remember)

        # 8 outcome
        spend = await self._settle(call, commit=200 <= response.status < 300)
        self._outcome(
            call, response.status, Reason.ALLOWED, spend=spend, latency_us=response.latency_us
        )
        return Outgoing(response.status, headers, body)

    def _scrubber(self, secret: str) -> Scrubber:
        key = blake3.blake3(secret.encode()).digest()
        scrubber = self._scrubbers.get(key)
        if scrubber is None:
            if len(self._scrubbers) > 64:
                self._scrubbers.clear()
            scrubber = self._scrubbers[key] = Scrubber([secret])
        return scrubber


def _done(value: SecretValue | Exception) -> asyncio.Future[SecretValue]:
    done: asyncio.Future[SecretValue] = asyncio.get_running_loop().create_future()
    if isinstance(value, Exception):
        done.set_exception(value)
    else:
        done.set_result(value)
    return done


def _drop_result(done: asyncio.Future[Any]) -> None:
    """Read a result nobody will use, so asyncio does not report it as never retrieved."""
    if not done.cancelled():
        done.exception()


def _outcome_committed(request_id: str, written: asyncio.Future[Any]) -> None:
    if written.cancelled():
        log.error("outcome of %s not recorded: its audit write was cancelled", request_id)
    elif (exc := written.exception()) is not None:
        log.error("outcome of %s not recorded: %s", request_id, exc)


def _store_down() -> Decision:
    return Decision.deny(
        Reason.AUDIT_UNAVAILABLE, "store", "the broker's state database is unavailable"
    )
