"""A pytest plugin: every ``*.session.jsonl`` file under the tests is replayed as a test.

Registered through the ``pytest11`` entry point, so installing vertex-tools is
enough. A session passes when replaying it offline through the broker's
pipeline (``vertex replay``) reproduces every recorded decision; it fails
listing each call whose decision changed, and a malformed or truncated file
fails naming the line.

The policy: the ini option ``vertex_replay_policy`` (a path relative to the
ini file), else the nearest ``policy.toml`` in the session's directory or a
parent up to the root directory. Disable with ``-p no:vertex_replay``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

__all__ = ["SessionFile", "SessionItem", "pytest_addoption", "pytest_collect_file"]

SUFFIX = ".session.jsonl"


def pytest_addoption(parser: pytest.Parser) -> None:
    """``vertex_replay_policy`` in pytest.ini / pyproject.toml."""
    parser.addini(
        "vertex_replay_policy",
        "policy file that *.session.jsonl files are replayed under (default: the nearest "
        "policy.toml beside or above each session file)",
        type="paths",
        default=[],
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect session files."""
    if file_path.name.endswith(SUFFIX):
        return SessionFile.from_parent(parent, path=file_path)
    return None


def _policy_for(config: pytest.Config, session: Path) -> Path | None:
    configured: list[Path] = config.getini("vertex_replay_policy")
    if configured:
        return Path(configured[0])
    root = Path(config.rootpath).resolve()
    here = session.resolve().parent
    while True:
        candidate = here / "policy.toml"
        if candidate.is_file():
            return candidate
        if here == root or here.parent == here:
            return None
        here = here.parent


class SessionFile(pytest.File):
    """One session file: one test."""

    def collect(self) -> list[SessionItem]:
        """The replay of this file."""
        return [SessionItem.from_parent(self, name="replay")]


class ReplayFailed(Exception):
    """Some recorded decision changed, or the file could not be replayed."""


class SessionItem(pytest.Item):
    """Replays its session under the policy and fails on any changed decision."""

    def runtest(self) -> None:
        """Replay; raise :class:`ReplayFailed` listing the differences."""
        from vertex_tools.errors import VertexError
        from vertex_tools.replay import read_session, replay_session

        policy = _policy_for(self.config, self.path)
        if policy is None:
            raise ReplayFailed(
                f"no policy for {self.path}: put a policy.toml beside it or set "
                "vertex_replay_policy in the pytest configuration"
            )
        try:
            result = replay_session(read_session(self.path), policy)
        except VertexError as exc:
            raise ReplayFailed(f"cannot replay: {exc}") from exc
        if not result.ok:
            lines = [d.describe() for d in result.differences]
            raise ReplayFailed(
                f"{len(lines)} of {result.calls} recorded decisions differ under {policy} "
                "(re-record the session if the change is intended):\n" + "\n".join(lines)
            )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        """Just the message for our failures."""
        if isinstance(excinfo.value, ReplayFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        """Where the test comes from."""
        return self.path, 0, f"replay {self.path.name}"
