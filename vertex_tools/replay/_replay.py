"""Replaying a recorded session through the broker's real pipeline, offline.

For each session: a throwaway data directory (fresh state: spend, rate,
nonces, approvals, taint memory), the given policy, a random stand-in value
vaulted for every upstream secret, one fresh token per recorded token (same
grant), and :class:`ReplayForwarder` in place of the network. Then, in order:

1. the clock is set to the call's recorded time, shifted so the first call is
   "now" (intervals kept: rate windows and expiry see the recorded pace);
2. the recorded request (method, path, query, headers, body, taint report) is
   signed again with the fresh token and handed to ``Pipeline.handle``: the
   same authenticate, decide, admit, taint and approval steps as ``vertex
   serve``;
3. what would leave the broker is answered from the recording: the call's own
   recorded response (which refills the broker's memory of served untrusted
   content), or for an amount look-up the latest recorded answer about that
   object (a ``GET`` of its path, or a list that holds it);
4. a call the new pipeline holds for approval is decided as the recording
   shows: if the same request was retried later and allowed, the replay
   approves it (``replay`` is the human); if the retry was refused as
   ``approval_denied``, it denies it; otherwise it stays pending;
5. the new decision is compared with the recorded one (effect and reason;
   the rule too where both name one).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vertex_tools.admin import Admin
from vertex_tools.broker.forward import Forwarder, UpstreamResponse
from vertex_tools.broker.netguard import AddressPolicy, UpstreamURL
from vertex_tools.broker.pipeline import Incoming, Outgoing, Pipeline
from vertex_tools.broker.runtime import BrokerConfig, Runtime
from vertex_tools.errors import TokenError
from vertex_tools.home import Home, init_home
from vertex_tools.policy import LoadedPolicy, load_policy
from vertex_tools.replay._format import (
    RecordedCall,
    RecordedDecision,
    Session,
    encode_taint,
    read_session,
)
from vertex_tools.signing import sign_request
from vertex_tools.store import ApprovalState
from vertex_tools.tokens import derive_signing_key, parse_token

__all__ = ["Difference", "ReplayForwarder", "ReplayResult", "replay_files", "replay_session"]

REPLAY_ACTOR_NOTE = "replay: decided as in the recording"


@dataclass(frozen=True, slots=True)
class Difference:
    """One call whose decision changed."""

    file: str
    line: int
    call: int
    what: str
    old: RecordedDecision
    new: RecordedDecision

    def describe(self) -> str:
        """``file:line: call 3 stripe_create_refund POST /stripe/v1/refunds: ...``."""
        return (
            f"{self.file}:{self.line}: call {self.call} {self.what}: was {self.old.short()}, "
            f"now {self.new.short()}"
        )

    def to_json(self) -> dict[str, Any]:
        """For ``--json``."""
        return {
            "file": self.file,
            "line": self.line,
            "call": self.call,
            "what": self.what,
            "old": self.old.to_json(),
            "new": self.new.to_json(),
        }


@dataclass(slots=True)
class ReplayResult:
    """The comparison of one session."""

    file: str
    calls: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No decision changed."""
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        """For ``--json``."""
        return {
            "file": self.file,
            "calls": self.calls,
            "same": self.calls - len(self.differences),
            "differences": [d.to_json() for d in self.differences],
        }


class ReplayForwarder(Forwarder):
    """The network, answered from the recording (nothing leaves the process)."""

    def __init__(self, calls: Sequence[RecordedCall]) -> None:
        super().__init__(
            AddressPolicy(()), connect_timeout=1.0, read_timeout=1.0, max_response_bytes=1
        )
        self._calls = calls
        self.current: int = -1
        """Index of the call being replayed."""
        self.sent: list[tuple[str, str]] = []
        """(method, path) of everything the pipeline forwarded."""

    async def start(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def forward(
        self,
        upstream: UpstreamURL,
        *,
        method: str,
        path: str,
        query: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
    ) -> UpstreamResponse:
        """The recorded answer of the current call, or of a look-up."""
        self.sent.append((method, path))
        call = self._calls[self.current] if 0 <= self.current < len(self._calls) else None
        if call is not None and (call.method, call.path) == (method, path):
            if call.decision.effect == "allow":
                return _response(call.status, call.content_type, call.response)
            return _missing(f"{method} {path} was refused when recorded: no answer to replay")
        if method == "GET":
            found = self._lookup(path, call)
            if found is not None:
                return _response(200, "application/json", found)
        return _missing(f"no recorded answer for {method} {path}")

    def _lookup(self, path: str, current: RecordedCall | None) -> bytes | None:
        """The look-up recorded with the call, else the latest recorded description of
        the object at ``path`` (a GET of it, or a list holding it)."""
        for looked, answer in current.lookups if current is not None else ():
            if looked == path:
                return answer
        object_id = path.rstrip("/").rsplit("/", 1)[-1]
        collection = path.rstrip("/").rsplit("/", 1)[0]
        for call in reversed(self._calls[: self.current + 1]):
            if call.decision.effect != "allow" or not 200 <= call.status < 300:
                continue
            if call.method == "GET" and call.path == path:
                return call.response
            if call.method == "GET" and call.path == collection:
                try:
                    listed = json.loads(call.response)
                except ValueError:
                    continue
                items = listed.get("data") if isinstance(listed, dict) else None
                for item in items if isinstance(items, list) else []:
                    if isinstance(item, dict) and item.get("id") == object_id:
                        return json.dumps(item).encode()
        return None


def _response(status: int, content_type: str, body: bytes) -> UpstreamResponse:
    headers = [("content-type", content_type)] if content_type else []
    return UpstreamResponse(status=status, headers=headers, body=body, latency_us=0)


def _missing(why: str) -> UpstreamResponse:
    body = json.dumps({"error": {"message": f"vertex replay: {why}"}}).encode()
    return _response(404, "application/json", body)


def decision_of(answer: Outgoing) -> RecordedDecision:
    """The decision a broker answer carries (``vertex-decision`` and the JSON error)."""
    headers = {k.lower(): v for k, v in answer.headers}
    if headers.get("vertex-decision") == "allow":
        return RecordedDecision("allow", "allowed", "")
    try:
        error = json.loads(answer.body)["error"]
        return RecordedDecision(
            str(error["effect"]),
            str(error["reason"]),
            str(error.get("rule", "")),
            str(error.get("message", "")),
        )
    except (ValueError, KeyError, TypeError):
        return RecordedDecision("none", "no_decision", "", f"HTTP {answer.status}")


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _retry_of(calls: Sequence[RecordedCall], index: int) -> RecordedCall | None:
    """The recorded retry of call ``index`` (same token and request), if any."""
    held = calls[index]
    for later in calls[index + 1 :]:
        if (later.token, later.method, later.target, later.body) == (
            held.token,
            held.method,
            held.target,
            held.body,
        ):
            return later
    return None


async def _replay(session: Session, loaded: LoadedPolicy, root: Path) -> ReplayResult:
    result = ReplayResult(str(session.path), calls=len(session.calls))
    if not session.calls:
        return result
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERTEX_")}
    home = Home(root / "home")
    init_home(home, environ=env)
    shutil.copyfile(loaded.path, home.policy)
    base = float(int(time.time()))
    first = session.calls[0].time
    clock = _Clock()
    clock.now = base
    tokens: dict[str, tuple[str, str]] = {}  # label -> (token, token id)
    with Admin(home, env, clock=clock) as admin:
        for upstream in loaded.policy.upstreams.values():
            # A stand-in value: nothing leaves, but the pipeline opens and scrubs it.
            admin.vault_put(upstream.secret, upstream.provider, "replay-" + secrets.token_hex(16))
        for call in session.calls:
            if call.token in tokens or call.grant not in loaded.policy.grants:
                continue
            try:
                issued = admin.token_issue(loaded, call.grant, None)
            except TokenError:
                continue
            tokens[call.token] = (issued.token, issued.record.token_id)
    config = BrokerConfig(home=home, policy_path=home.policy, environ=env, reload_interval_s=3600)
    runtime = Runtime(config, clock=clock)
    forwarder = ReplayForwarder(session.calls)
    runtime.forwarder = forwarder
    await runtime.start()
    try:
        pipeline = Pipeline(runtime)
        for index, call in enumerate(session.calls):
            clock.now = base + max(0.0, call.time - first)
            forwarder.current = index
            if call.token not in tokens:
                new = RecordedDecision(
                    "deny",
                    "grant_unknown",
                    f"grants.{call.grant}",
                    f"the policy has no grant {call.grant!r} (or cannot issue a token for it)",
                )
            else:
                token, token_id = tokens[call.token]
                new = decision_of(await pipeline.handle(_incoming(call, token, clock.now)))
                if new.effect == "approve" and new.reason == "approval_pending":
                    _decide_as_recorded(home, env, clock, session.calls, index, token_id)
            if not new.same_as(call.decision):
                result.differences.append(
                    Difference(
                        str(session.path),
                        call.line,
                        call.number,
                        call.describe(),
                        call.decision,
                        new,
                    )
                )
    finally:
        await runtime.stop()
    return result


def _decide_as_recorded(
    home: Home,
    env: dict[str, str],
    clock: _Clock,
    calls: Sequence[RecordedCall],
    index: int,
    token_id: str,
) -> None:
    retry = _retry_of(calls, index)
    if retry is None:
        return
    if retry.decision.effect == "allow":
        approve = True
    elif retry.decision.reason == "approval_denied":
        approve = False
    else:
        return
    with Admin(home, env, clock=clock) as admin:
        for record in admin.approval_list(ApprovalState.PENDING):
            if record.token_id == token_id:
                admin.approval_decide(record.approval_id, approve=approve, note=REPLAY_ACTOR_NOTE)


def _incoming(call: RecordedCall, token: str, now: float) -> Incoming:
    parsed = parse_token(token)
    headers = [(name, value) for name, value in call.headers]
    if call.taint is not None:
        headers.append(("x-vertex-taint", encode_taint(call.taint)))
    raw_path = f"/proxy/{call.upstream}{call.path}"
    authorization = sign_request(
        derive_signing_key(parsed.secret),
        token_id=parsed.token_id,
        method=call.method,
        target=call.target,
        body=call.body,
        headers=headers,
        timestamp=int(now),
    )
    headers.append(("authorization", authorization))
    return Incoming(
        method=call.method,
        raw_path=raw_path,
        query=call.query,
        headers=[(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        body=call.body,
    )


def replay_session(session: Session, policy: Path | LoadedPolicy) -> ReplayResult:
    """Replay one parsed session under ``policy``; the differences in its decisions."""
    loaded = policy if isinstance(policy, LoadedPolicy) else load_policy(policy)
    with tempfile.TemporaryDirectory(prefix="vertex-replay-") as tmp:
        return asyncio.run(_replay(session, loaded, Path(tmp)))


def replay_files(paths: Sequence[Path], policy: Path) -> list[ReplayResult]:
    """Read every file first (a malformed one stops everything), then replay each."""
    sessions = [read_session(path) for path in paths]
    loaded = load_policy(policy)
    return [replay_session(session, loaded) for session in sessions]
