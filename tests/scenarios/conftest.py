"""The scenario world (one per session), and the corpus scores in pytest's summary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.providers.stripe.standin import LocalStripe
from tests.scenarios.scores import RESULTS, score_table
from tests.scenarios.world import World, start_world


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory, localstripe: LocalStripe) -> Iterator[World]:
    """Every stand-in and one broker, for the whole corpus (localstripe is the session's:
    its store is a module global)."""
    yield from start_world(Path(tmp_path_factory.mktemp("scenarios")), localstripe)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print attack success rate and utility after a run that played scenarios."""
    if RESULTS:
        terminalreporter.write_sep("=", "prompt-injection scenarios")
        for line in score_table(RESULTS).splitlines():
            terminalreporter.write_line(line)
