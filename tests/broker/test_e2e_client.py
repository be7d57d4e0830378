"""The Python client: sync and async, TCP and Unix socket, and the embedded default."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.conftest import SECRET, Deployment, make_deployment
from vertex_tools import AsyncBrokerClient, BrokerRefused, local_broker
from vertex_tools.demo.echo import EchoServer
from vertex_tools.errors import BrokerUnavailable, TokenError
from vertex_tools.local import LocalBroker


def test_async_client(deployment: Deployment, broker: LocalBroker) -> None:
    issued = deployment.issue("reader")
    assert broker.url is not None

    async def go() -> tuple[int, str]:
        async with AsyncBrokerClient(broker.url or "", token=issued.token) as client:
            ok = await client.get("echo", "/items/1")
            try:
                await client.post("echo", "/items", json={"amount": 1})
            except BrokerRefused as exc:
                return ok.status_code, exc.decision.reason.value
        return ok.status_code, "not refused"

    assert asyncio.run(go()) == (200, "not_allowed")


def test_unix_socket_is_owner_only(
    tmp_path_factory: pytest.TempPathFactory, upstream: EchoServer
) -> None:
    # A short directory so the socket path fits in sun_path.
    root = Path(f"/tmp/vt-uds-{os.getpid()}")
    dep = make_deployment(root, upstream)
    issued = dep.issue("reader")
    with dep.broker(listen="uds") as broker:
        assert broker.url is not None and broker.url.startswith("unix:")
        sock = Path(broker.url.removeprefix("unix:"))
        assert oct(sock.stat().st_mode & 0o777) == "0o600"
        with broker.client(issued.token) as client:
            assert client.get("echo", "/items/1").json()["authorized"] is True

        async def over_async_client() -> int:
            async with AsyncBrokerClient(broker.url or "", token=issued.token) as client:
                return (await client.get("echo", "/items/1")).status_code

        assert asyncio.run(over_async_client()) == 200
    assert not sock.exists()


def test_local_broker_in_one_call_stops_on_close(
    tmp_path_factory: pytest.TempPathFactory, upstream: EchoServer
) -> None:
    dep = make_deployment(tmp_path_factory.mktemp("one-call"), upstream)
    issued = dep.issue("reader")
    client = local_broker(dep.home.root, token=issued.token)
    assert client.get("echo", "/items/1").status_code == 200
    client.close()
    with pytest.raises(BrokerUnavailable):
        client.get("echo", "/items/1")


def test_client_refuses_a_non_token_and_hides_the_token(deployment: Deployment) -> None:
    with pytest.raises(TokenError) as info:
        AsyncBrokerClient("http://127.0.0.1:1", token=SECRET)
    assert SECRET not in str(info.value)
    issued = deployment.issue("reader")
    with LocalBroker(deployment.home.root, env=deployment.env) as broker:
        client = broker.client(issued.token)
        assert issued.token.split(".")[2] not in repr(client) + repr(client._http.auth)
        client.close()


def test_unreachable_broker_is_broker_unavailable(deployment: Deployment) -> None:
    issued = deployment.issue("reader")
    from vertex_tools import BrokerClient

    client = BrokerClient("http://127.0.0.1:9", token=issued.token)
    with client, pytest.raises(BrokerUnavailable) as info:
        client.get("echo", "/items/1")
    assert "cannot reach the broker" in str(info.value)
