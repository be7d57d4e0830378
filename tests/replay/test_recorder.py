"""Recording through the real broker and stand-ins: nothing secret reaches the file, and
what is written replays to the same decisions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.providers.github.conftest import TOKEN as GITHUB_TOKEN
from tests.providers.stripe.standin import STRIPE_KEY
from tests.providers.supabase.conftest import SUPABASE_KEY
from tests.scenarios.world import World
from tests.sessions.record import POLICY, RECORDINGS, record
from vertex_tools.admin import Admin
from vertex_tools.client import BrokerClient
from vertex_tools.replay import Recorder, read_session, replay_session
from vertex_tools.tokens import mint_token


def _assert_clean(text: str, token_ids: list[str]) -> None:
    for secret in (STRIPE_KEY, GITHUB_TOKEN, SUPABASE_KEY):
        assert secret not in text
        assert secret[-8:] not in text
    assert "vt1." not in text and "vt1%2" not in text.lower()
    assert not re.search(r"tk_[a-z2-7]{16}", text)
    for token_id in token_ids:
        assert token_id not in text
    lowered = text.lower()
    assert "sig=" not in lowered
    assert '"authorization"' not in lowered and '"apikey"' not in lowered


def test_recorded_runs_hold_no_secret_or_token_and_replay_the_same(
    world: World, tmp_path: Path
) -> None:
    wanted = {"stripe-refund-the-user-asked-for", "supabase-payout-approved"}
    paths = [record(world, r, tmp_path) for r in RECORDINGS if r.file in wanted]
    with Admin(world.home, world.env) as admin:
        token_ids = [t.token_id for t in admin.token_list()]
    assert len(token_ids) >= 6
    for path in paths:
        text = path.read_text("utf-8")
        _assert_clean(text, token_ids)
        session = read_session(path)
        assert {c.token for c in session.calls} <= {"t1", "t2", "t3"}
        result = replay_session(session, POLICY)
        assert result.ok, [d.describe() for d in result.differences]
    refund = read_session(tmp_path / "stripe-refund-the-user-asked-for.session.jsonl")
    assert [(c.tool, c.grant) for c in refund.calls] == [
        ("stripe_retrieve_charge", "stripe-agent"),
        ("stripe_create_refund", "stripe-agent"),
    ]
    assert refund.calls[1].args == {"charge": json.loads(refund.calls[0].response)["id"]}
    assert refund.calls[1].decision.effect == "allow"
    assert json.loads(refund.calls[1].response)["object"] == "refund"
    payout = read_session(tmp_path / "supabase-payout-approved.session.jsonl")
    assert [c.decision.reason for c in payout.calls] == ["approval_pending", "allowed"]


def test_a_token_in_arguments_or_answers_is_redacted(tmp_path: Path) -> None:
    """Whatever the model copied where (a token in an argument, an upstream echoing
    it), no token and no Authorization header reaches the file."""
    issued = mint_token("g", now=0, ttl=3600)
    seen: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        echo = {"echo": request.content.decode(), "auth": request.headers["authorization"]}
        return httpx.Response(
            200,
            json=echo,
            headers={"vertex-decision": "allow", "vertex-request-id": "r1"},
        )

    path = tmp_path / "t.session.jsonl"
    with Recorder(path) as recorder:
        client = BrokerClient(
            "http://broker",
            token=issued.token,
            transport=recorder.transport("g", inner=httpx.MockTransport(upstream)),
        )
        client.post(
            "echo",
            "/items",
            json={"note": f"use {issued.token}"},
            headers={"X-Api-Key": "k-secret", "Cookie": "c=secret"},
        )
        client.close()
    assert seen and "Vertex-v1" in seen[0].headers["authorization"]
    text = path.read_text("utf-8")
    assert issued.token not in text
    assert issued.record.token_id not in text
    assert "[vertex token]" in text
    assert "k-secret" not in text
    assert "c=secret" not in text
    assert "sig=" not in text
    (call,) = read_session(path).calls
    assert (call.method, call.upstream, call.path) == ("POST", "echo", "/items")


async def test_concurrent_async_tool_calls_are_attributed_to_their_tools(tmp_path: Path) -> None:
    """Each call is named after the tool that made it, also when tools run at once."""
    import asyncio

    from langchain_core.runnables import RunnableConfig

    from vertex_tools import StripeToolkit

    issued = mint_token("stripe-agent", now=0, ttl=3600)

    def broker(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "x"}, headers={"vertex-decision": "allow"})

    path = tmp_path / "a.session.jsonl"
    with Recorder(path) as recorder:
        client = BrokerClient(
            "http://broker",
            token=issued.token,
            transport=recorder.transport("stripe-agent", inner=httpx.MockTransport(broker)),
        )
        tools = {t.name: t for t in StripeToolkit(client=client).get_tools()}
        run: RunnableConfig = {"callbacks": [recorder]}
        await asyncio.gather(
            *(
                tools["stripe_retrieve_customer"].ainvoke({"customer": f"cus_{i}"}, config=run)
                for i in range(4)
            ),
            *(
                tools["stripe_retrieve_charge"].ainvoke({"charge": f"ch_{i}"}, config=run)
                for i in range(4)
            ),
        )
        client.close()
    calls = read_session(path).calls
    assert len(calls) == 8
    for call in calls:
        assert call.tool is not None and isinstance(call.args, dict)
        if call.tool == "stripe_retrieve_customer":
            assert call.path == f"/v1/customers/{call.args['customer']}"
        else:
            assert call.tool == "stripe_retrieve_charge"
            assert call.path == f"/v1/charges/{call.args['charge']}"
