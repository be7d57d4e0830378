"""Replay recomputes decisions through the real pipeline: a policy change that flips a
recorded decision is reported, and what replay rebuilds (the broker's memory of served
content, approvals, amount look-ups) is what the recorded decisions depended on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from vertex_tools.replay import read_session, replay_session

SESSIONS = Path(__file__).parents[1] / "sessions"
POLICY = SESSIONS / "policy.toml"
ALL = sorted(SESSIONS.glob("*.session.jsonl"))


def _policy(tmp_path: Path, old: str, new: str) -> Path:
    text = POLICY.read_text("utf-8")
    assert old in text, old
    path = tmp_path / "changed.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def _grant_block(grant: str, extra: str) -> tuple[str, str]:
    """(old, new) that appends ``extra`` to grant ``grant``'s block."""
    text = POLICY.read_text("utf-8")
    match = re.search(rf"\[grants\.{re.escape(grant)}\]\n(?:.+\n)+", text)
    assert match is not None
    return match.group(0), match.group(0) + extra + "\n"


def _session(name: str) -> Path:
    return SESSIONS / f"{name}.session.jsonl"


def test_every_provider_and_outcome_is_covered() -> None:
    seen: set[tuple[str, str]] = set()
    for path in ALL:
        for call in read_session(path).calls:
            seen.add((call.upstream, f"{call.decision.effect} {call.decision.reason}"))
    for upstream in ("stripe", "github", "supabase"):
        assert (upstream, "deny tainted_argument") in seen, upstream
        assert (upstream, "allow allowed") in seen, upstream
    assert {u for u, d in seen if d == "approve approval_pending"} >= {
        "stripe",
        "github",
        "supabase",
    }
    assert ("github", "deny approval_denied") in seen


@pytest.mark.parametrize("path", ALL, ids=[p.name for p in ALL])
def test_recorded_sessions_replay_the_same(path: Path) -> None:
    result = replay_session(read_session(path), POLICY)
    assert result.ok, [d.describe() for d in result.differences]
    assert result.calls >= 2


def test_a_taint_rule_set_to_allow_flips_the_blocked_refund(tmp_path: Path) -> None:
    old, new = _grant_block("stripe-agent", 'taint = { control = "allow" }')
    result = replay_session(
        read_session(_session("stripe-injection-refund-denied")), _policy(tmp_path, old, new)
    )
    assert len(result.differences) == 1
    diff = result.differences[0]
    assert (diff.line, diff.call) == (3, 2)
    assert diff.what == "stripe_create_refund POST /stripe/v1/refunds"
    assert (diff.old.effect, diff.old.reason, diff.old.rule) == (
        "deny",
        "tainted_argument",
        "grants.stripe-agent.taint.control",
    )
    assert (diff.new.effect, diff.new.reason) == ("allow", "allowed")
    assert "stripe-injection-refund-denied.session.jsonl:3: call 2" in diff.describe()


def test_removing_an_operation_flips_an_allowed_call(tmp_path: Path) -> None:
    policy = _policy(tmp_path, '"issues.comment", ', "")
    result = replay_session(read_session(_session("github-triage-comment")), policy)
    assert [(d.call, d.old.reason, d.new.effect, d.new.reason) for d in result.differences] == [
        (2, "allowed", "deny", "not_allowed")
    ]


def test_a_lower_spend_ceiling_flips_the_refund_the_user_asked_for(tmp_path: Path) -> None:
    # The refund names no amount: the broker's look-up (answered from the recording)
    # gives the amount that the new ceiling then refuses.
    policy = _policy(tmp_path, "per_call = 500000", "per_call = 100")
    result = replay_session(read_session(_session("stripe-refund-the-user-asked-for")), policy)
    assert [(d.call, d.new.reason) for d in result.differences] == [(2, "spend_per_call_exceeded")]


def test_a_removed_grant_is_reported_for_each_of_its_calls(tmp_path: Path) -> None:
    policy = _policy(tmp_path, "[grants.github-agent]", "[grants.github-renamed]")
    result = replay_session(read_session(_session("github-injection-collaborator-denied")), policy)
    assert [(d.call, d.new.reason) for d in result.differences] == [
        (1, "grant_unknown"),
        (2, "grant_unknown"),
    ]


def _rewrite(tmp_path: Path, name: str, change: object) -> Path:
    lines = _session(name).read_text("utf-8").splitlines()
    out = []
    for line in lines:
        obj = json.loads(line)
        if "call" in obj:
            change(obj)  # type: ignore[operator]
        out.append(json.dumps(obj))
    path = tmp_path / f"{name}.session.jsonl"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def test_the_brokers_memory_is_rebuilt_from_the_recorded_answers(tmp_path: Path) -> None:
    """Without the agent's taint reports the broker still refuses the collaborator: it
    remembers the issue body it served during the replay. Empty that answer and the
    refusal is gone, so the refusal came from the replayed response."""

    def no_report(obj: dict[str, object]) -> None:
        request = obj["request"]
        assert isinstance(request, dict)
        request["taint"] = None

    name = "github-injection-collaborator-denied"
    unreported = _rewrite(tmp_path, name, no_report)
    assert replay_session(read_session(unreported), POLICY).ok

    def no_report_no_body(obj: dict[str, object]) -> None:
        no_report(obj)
        if obj["call"] == 1:
            response = obj["response"]
            assert isinstance(response, dict)
            response["body"] = "{}"

    blank = tmp_path / "blank"
    blank.mkdir()
    result = replay_session(read_session(_rewrite(blank, name, no_report_no_body)), POLICY)
    assert [(d.call, d.old.reason, d.new.reason) for d in result.differences] == [
        (2, "tainted_argument", "allowed")
    ]


@pytest.mark.parametrize(
    ("name", "grant"),
    [
        ("stripe-payment-approved", "stripe-approve"),
        ("supabase-payout-approved", "supabase-approve"),
    ],
)
def test_an_approved_hold_becomes_a_refusal_when_the_grant_denies(
    tmp_path: Path, name: str, grant: str
) -> None:
    old, _ = _grant_block(grant, "")
    assert 'taint = { control = "approve" }' in old
    path = _policy(tmp_path, old, old.replace('control = "approve"', 'control = "deny"'))
    result = replay_session(read_session(_session(name)), path)
    assert [(d.call, d.old.reason, d.new.reason) for d in result.differences] == [
        (1, "approval_pending", "tainted_argument"),
        (2, "allowed", "tainted_argument"),
    ]


def test_a_human_denial_is_replayed_as_a_denial(tmp_path: Path) -> None:
    """The held-and-denied session replays the same only because replay denies the hold
    as the recording shows; recorded as approved instead, the retry is allowed."""

    def approved(obj: dict[str, object]) -> None:
        if obj["call"] == 3:
            obj["decision"] = {"effect": "allow", "reason": "allowed", "rule": "", "message": ""}

    path = _rewrite(tmp_path, "github-injection-held-and-denied-by-human", approved)
    assert replay_session(read_session(path), POLICY).ok
