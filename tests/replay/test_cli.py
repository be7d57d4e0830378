"""``vertex replay`` as a user runs it: a fresh process, exit codes, text and JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SESSIONS = Path(__file__).parents[1] / "sessions"
POLICY = SESSIONS / "policy.toml"
REFUND = SESSIONS / "stripe-injection-refund-denied.session.jsonl"
TRIAGE = SESSIONS / "github-triage-comment.session.jsonl"


def vertex(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERTEX_")}
    if home is not None:
        env["VERTEX_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "vertex_tools", "replay", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_same_decisions_exit_0() -> None:
    result = vertex(str(REFUND), str(TRIAGE), "--policy", str(POLICY))
    assert result.returncode == 0, result.stderr
    assert f"{REFUND}: 2 calls, same" in result.stdout
    assert f"{TRIAGE}: 2 calls, same" in result.stdout


def test_a_flipped_decision_exits_1_naming_the_call(tmp_path: Path) -> None:
    changed = tmp_path / "policy.toml"
    changed.write_text(
        POLICY.read_text("utf-8").replace(
            "[grants.stripe-agent]\n", '[grants.stripe-agent]\ntaint = { control = "allow" }\n'
        ),
        encoding="utf-8",
    )
    result = vertex(str(REFUND), str(TRIAGE), "--policy", str(changed))
    assert result.returncode == 1, result.stderr
    assert (
        f"{REFUND}:3: call 2 stripe_create_refund POST /stripe/v1/refunds: was deny "
        "tainted_argument (grants.stripe-agent.taint.control), now allow allowed"
    ) in result.stdout
    assert f"{REFUND}: 2 calls, 1 differ" in result.stdout
    assert f"{TRIAGE}: 2 calls, same" in result.stdout

    data = json.loads(vertex(str(REFUND), "--policy", str(changed), "--json").stdout)
    assert data["same"] is False
    (session,) = data["sessions"]
    assert (session["calls"], session["same"]) == (2, 1)
    (diff,) = session["differences"]
    assert (diff["line"], diff["old"]["reason"], diff["new"]["effect"]) == (
        3,
        "tainted_argument",
        "allow",
    )


def test_a_truncated_file_exits_3_naming_the_line(tmp_path: Path) -> None:
    cut = tmp_path / "cut.session.jsonl"
    cut.write_text("\n".join(REFUND.read_text("utf-8").splitlines()[:3]) + "\n", "utf-8")
    result = vertex(str(TRIAGE), str(cut), "--policy", str(POLICY))
    assert result.returncode == 3
    assert f"{cut}:3: no end line after the last call" in result.stderr
    assert result.stdout == ""  # nothing is replayed when any file is bad


def test_an_invalid_policy_or_a_missing_home_exits_3(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("version = 7\n", "utf-8")
    result = vertex(str(REFUND), "--policy", str(bad))
    assert result.returncode == 3
    assert "is invalid" in result.stderr
    result = vertex(str(REFUND), home=tmp_path / "nowhere")
    assert result.returncode == 3
    assert f"no policy file at {tmp_path / 'nowhere' / 'policy.toml'}: pass --policy" in (
        result.stderr
    )


def test_help_and_usage() -> None:
    result = vertex("--help")
    assert result.returncode == 0
    assert "Exit codes: 0 every decision is the same" in result.stdout
    assert vertex().returncode == 2


def test_the_data_directorys_policy_is_the_default(tmp_path: Path) -> None:
    home = tmp_path / "vhome"
    home.mkdir()
    (home / "policy.toml").write_text(POLICY.read_text("utf-8"), "utf-8")
    result = vertex(str(TRIAGE), "--json", home=home)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["policy"] == str(home / "policy.toml")
    assert data["same"] is True
    assert data["sessions"][0]["same"] == 2
