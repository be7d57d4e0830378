"""The scenario world (stand-ins and one broker), for recording tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.providers.stripe.standin import LocalStripe
from tests.scenarios.world import World, start_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, localstripe: LocalStripe) -> Iterator[World]:
    """Every stand-in and one broker (localstripe is the session's: one per process)."""
    yield from start_world(Path(tmp_path_factory.mktemp("record")), localstripe)
