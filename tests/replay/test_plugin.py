"""The pytest plugin (entry point ``pytest11``): a project's session files become test
cases, and a policy change that flips a recorded decision fails them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SESSIONS = Path(__file__).parents[1] / "sessions"
REFUND = SESSIONS / "stripe-injection-refund-denied.session.jsonl"
TRIAGE = SESSIONS / "github-triage-comment.session.jsonl"


def _project(tmp_path: Path, policy: str, ini: str = "") -> Path:
    root = tmp_path / "project"
    sessions = root / "tests" / "sessions"
    sessions.mkdir(parents=True)
    shutil.copy(REFUND, sessions)
    shutil.copy(TRIAGE, sessions)
    (root / "pytest.ini").write_text("[pytest]\n" + ini, "utf-8")
    (root / "tests" / "policy.toml").write_text(policy, "utf-8")
    return root


def _pytest(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(root)],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=300,
    )


def test_sessions_are_collected_and_pass_under_their_policy(tmp_path: Path) -> None:
    root = _project(tmp_path, (SESSIONS / "policy.toml").read_text("utf-8"))
    result = _pytest(root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_a_flipped_decision_fails_the_session_test(tmp_path: Path) -> None:
    text = (SESSIONS / "policy.toml").read_text("utf-8")
    changed = text.replace(
        "[grants.stripe-agent]\n", '[grants.stripe-agent]\ntaint = { control = "allow" }\n'
    )
    assert changed != text
    result = _pytest(_project(tmp_path, changed))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 1 passed" in result.stdout
    assert "1 of 2 recorded decisions differ" in result.stdout
    assert "stripe-injection-refund-denied.session.jsonl:3: call 2 stripe_create_refund" in (
        result.stdout
    )


def test_the_ini_option_names_the_policy_and_a_bad_file_fails(tmp_path: Path) -> None:
    root = _project(tmp_path, "version = 1\n", ini="vertex_replay_policy = real.toml\n")
    (root / "real.toml").write_text((SESSIONS / "policy.toml").read_text("utf-8"), "utf-8")
    cut = root / "tests" / "sessions" / "cut.session.jsonl"
    cut.write_text("\n".join(REFUND.read_text("utf-8").splitlines()[:2]) + "\n", "utf-8")
    result = _pytest(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 2 passed" in result.stdout
    assert "cut.session.jsonl:2: no end line" in result.stdout
