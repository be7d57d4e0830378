"""Fixtures and helpers the broker's taint tests share."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import Deployment
from vertex_tools import BrokerClient, BrokerRefused
from vertex_tools.local import LocalBroker

ClientFor = Callable[[str], BrokerClient]


@pytest.fixture
def client_for(deployment: Deployment, broker: LocalBroker) -> Iterator[ClientFor]:
    """Clients on fresh tokens of a grant (a fresh token has no memory of served content)."""
    made: list[BrokerClient] = []

    def make(grant: str) -> BrokerClient:
        client = broker.client(deployment.issue(grant).token)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def run(name: str) -> dict[str, str]:
    """The header naming an agent run."""
    return {"X-Vertex-Run": name}


def refused(call: Callable[[], object]) -> BrokerRefused:
    """The broker's refusal of ``call`` (fails the test if it was let through)."""
    with pytest.raises(BrokerRefused) as info:
        call()
    return info.value


def approval_id_of(error: BrokerRefused) -> str:
    """The approval id a held request's refusal names (``approval_pending``)."""
    return error.decision.message.split("held for a human's approval as ", 1)[1][:19]
