"""Through a LangChain tool, the real broker process and localstripe: the issue's
"done when" for Stripe, spend ceilings included (full refunds without an amount)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.providers.stripe.conftest import StripeDeployment
from tests.providers.stripe.standin import STRIPE_KEY
from vertex_tools import BrokerRefused
from vertex_tools.tokens import mint_token


def forwarded_since(env: StripeDeployment, start: int) -> list[str]:
    """``METHOD path`` of what reached the stand-in after index ``start``."""
    return [f"{r.method} {r.path}" for r in env.standin.received[start:]]


def test_allowed_call_reaches_stripe_with_the_vaulted_key(stripe_env: StripeDeployment) -> None:
    tools = stripe_env.tools("support-agent")
    token = stripe_env.tokens[-1]
    start = len(stripe_env.standin.received)
    out = tools["stripe_list_customers"].invoke({"email": "ada@example.com"})
    answer = json.loads(out)
    assert [c["name"] for c in answer["data"]] == ["Ada Lovelace"]
    received = stripe_env.standin.received[start:]
    assert [(r.method, r.path, r.query) for r in received] == [
        ("GET", "/v1/customers", "email=ada@example.com&limit=10")
    ]
    assert received[0].authorization == f"Bearer {STRIPE_KEY}"
    # The agent's token never crossed the broker.
    assert token not in repr(received[0])


def test_retrieve_passes_the_id_in_the_path(stripe_env: StripeDeployment) -> None:
    tools = stripe_env.tools("support-agent")
    out = tools["stripe_retrieve_customer"].invoke({"customer": stripe_env.data.customer})
    assert json.loads(out)["email"] == "ada@example.com"


def test_the_standin_refuses_anything_but_the_vaulted_key(stripe_env: StripeDeployment) -> None:
    # What a broken injection would send: an agent's token (this one is never issued,
    # so the test below can still say no issued token reached the stand-in), or nothing.
    token = mint_token("support-agent", now=time.time(), ttl=60).token
    for headers in ({"Authorization": f"Bearer {token}"}, {}):
        answer = httpx.get(stripe_env.standin.url + "/v1/customers", headers=headers, timeout=10)
        assert answer.status_code == 401
        assert answer.json()["error"]["type"] == "invalid_request_error"


def test_operation_outside_the_grant_is_refused_as_tool_output(
    stripe_env: StripeDeployment,
) -> None:
    tools = stripe_env.tools("support-agent")
    start = len(stripe_env.standin.received)
    out = tools["stripe_create_customer"].invoke({"name": "Mallory", "email": "m@example.com"})
    assert out.startswith("REFUSED by policy (not_allowed, rule grants.support-agent.operations)")
    assert "customers.create" in out
    assert forwarded_since(stripe_env, start) == []


def test_unknown_operation_is_refused(stripe_env: StripeDeployment) -> None:
    start = len(stripe_env.standin.received)
    with stripe_env.client("all-tools") as client:
        for method, path in (
            ("DELETE", f"/v1/customers/{stripe_env.data.customer}"),
            ("POST", f"/v1/payment_intents/{stripe_env.data.payment_intent}/capture"),
            ("POST", "/v1/payouts"),
        ):
            with pytest.raises(BrokerRefused) as info:
                client.request(method, "stripe", path, data={"amount": "1"})
            assert info.value.decision.reason.value == "unknown_operation"
    assert forwarded_since(stripe_env, start) == []


def test_write_with_form_encoded_metadata(stripe_env: StripeDeployment) -> None:
    tools = stripe_env.tools("all-tools")
    customer = stripe_env.data.customer
    out = tools["stripe_update_customer"].invoke(
        {"customer": customer, "metadata": {"ticket": "T-42"}}
    )
    assert json.loads(out)["metadata"] == {"tier": "gold", "ticket": "T-42"}
    last = stripe_env.standin.received[-1]
    assert last.content_type.startswith("application/x-www-form-urlencoded")
    assert last.body == b"metadata%5Bticket%5D=T-42"


def test_per_call_ceiling_refuses_a_stated_amount(stripe_env: StripeDeployment) -> None:
    charge = stripe_env.data.charge(9000)
    tools = stripe_env.tools("support-agent")
    start = len(stripe_env.standin.received)
    out = tools["stripe_create_refund"].invoke({"charge": charge, "amount": 5001})
    assert out.startswith("REFUSED by policy (spend_per_call_exceeded")
    assert forwarded_since(stripe_env, start) == []
    assert stripe_env.data.get(f"/v1/charges/{charge}")["amount_refunded"] == 0


def test_full_refund_is_counted_at_the_charges_amount(stripe_env: StripeDeployment) -> None:
    # per_call 5000: a refund with no amount of a 15000 charge is a 15000 refund.
    charge = stripe_env.data.charge(15000)
    tools = stripe_env.tools("support-agent")
    start = len(stripe_env.standin.received)
    out = tools["stripe_create_refund"].invoke({"charge": charge})
    assert out.startswith("REFUSED by policy (spend_per_call_exceeded")
    assert "15000" in out
    # Only the broker's own read of the charge reached Stripe; no refund was made.
    assert forwarded_since(stripe_env, start) == [f"GET /v1/charges/{charge}"]
    assert stripe_env.standin.received[-1].authorization == f"Bearer {STRIPE_KEY}"
    assert stripe_env.data.get(f"/v1/charges/{charge}")["amount_refunded"] == 0


def test_full_refunds_consume_the_daily_ceiling(stripe_env: StripeDeployment) -> None:
    # refunds-day: per_call 5000, per_day 6000.
    small, other = stripe_env.data.charge(4000), stripe_env.data.charge(3000)
    tools = stripe_env.tools("refunds-day")
    refund = tools["stripe_create_refund"]

    done = json.loads(refund.invoke({"charge": small}))
    assert (done["object"], done["charge"], done["amount"]) == ("refund", small, 4000)
    assert stripe_env.intents("refunds-day")[-1]["amount"] == 4000

    # 4000 counted + 3000 > 6000: the second full refund is over the day's ceiling.
    start = len(stripe_env.standin.received)
    out = refund.invoke({"charge": other})
    assert out.startswith("REFUSED by policy (spend_window_exceeded")
    assert forwarded_since(stripe_env, start) == [f"GET /v1/charges/{other}"]
    assert stripe_env.data.get(f"/v1/charges/{other}")["amount_refunded"] == 0

    # Exactly what is left of the day still passes, then nothing more does.
    assert json.loads(refund.invoke({"charge": other, "amount": 2000}))["amount"] == 2000
    assert refund.invoke({"charge": other, "amount": 1}).startswith(
        "REFUSED by policy (spend_window_exceeded"
    )


def test_full_refund_after_a_partial_one_counts_only_the_rest(
    stripe_env: StripeDeployment,
) -> None:
    charge = stripe_env.data.charge(9000)
    refund = stripe_env.tools("refunds-rest")["stripe_create_refund"]
    assert refund.invoke({"charge": charge}).startswith("REFUSED by policy (spend_per_call")
    assert json.loads(refund.invoke({"charge": charge, "amount": 5000}))["amount"] == 5000
    # 9000 - 5000 already refunded = 4000, within per_call.
    answer = json.loads(refund.invoke({"charge": charge}))
    # What the broker counted is what moved (the stand-in refunds the rest, like Stripe).
    assert (answer["object"], answer["amount"]) == ("refund", 4000)
    # Nothing is left: a stated refund of more than what remains is refused by the broker.
    over = refund.invoke({"charge": charge, "amount": 1})
    assert over.startswith("REFUSED by policy (amount_invalid"), over
    intents = stripe_env.intents("refunds-rest")
    allowed = [i for i in intents if i.get("effect") == "allow"]
    assert [i.get("amount") for i in allowed] == [5000, 4000]
    assert allowed[-1]["amount_source"] == "lookup"
    assert intents[-1]["reason"] == "amount_invalid"


def test_full_refund_of_a_payment_intent_reads_the_intent(stripe_env: StripeDeployment) -> None:
    big, small = stripe_env.data.paid_intent(15000), stripe_env.data.paid_intent(3000)
    refund = stripe_env.tools("refunds-intent")["stripe_create_refund"]
    start = len(stripe_env.standin.received)
    out = refund.invoke({"payment_intent": big})
    assert out.startswith("REFUSED by policy (spend_per_call_exceeded")
    assert forwarded_since(stripe_env, start) == [f"GET /v1/payment_intents/{big}"]
    done = json.loads(refund.invoke({"payment_intent": small}))
    assert (done["payment_intent"], done["amount"]) == (small, 3000)
    assert stripe_env.intents("refunds-intent")[-1]["amount"] == 3000


def test_full_refund_of_a_missing_charge_is_refused(stripe_env: StripeDeployment) -> None:
    refund = stripe_env.tools("support-agent")["stripe_create_refund"]
    out = refund.invoke({"charge": "ch_doesnotexist"})
    assert out.startswith("REFUSED by policy (amount_unavailable")


def test_payments_reach_the_daily_ceiling(stripe_env: StripeDeployment) -> None:
    # payer: per_call 5000, per_day 8000.
    create = stripe_env.tools("payer")["stripe_create_payment_intent"]
    args = {"currency": "usd", "customer": stripe_env.data.customer}
    assert create.invoke({**args, "amount": 5001}).startswith(
        "REFUSED by policy (spend_per_call_exceeded"
    )
    assert json.loads(create.invoke({**args, "amount": 5000}))["amount"] == 5000
    assert json.loads(create.invoke({**args, "amount": 3000}))["amount"] == 3000
    assert create.invoke({**args, "amount": 1}).startswith(
        "REFUSED by policy (spend_window_exceeded"
    )


def test_confirm_counts_the_intents_amount(stripe_env: StripeDeployment) -> None:
    """A confirm carries no amount: the broker reads the intent named in the path."""
    confirm = stripe_env.tools("confirmer")["stripe_confirm_payment_intent"]
    small = stripe_env.data.open_intent(2500)
    assert json.loads(confirm.invoke({"payment_intent": small}))["status"] == "succeeded"
    counted = [i for i in stripe_env.intents("confirmer") if i.get("operation")]
    assert (counted[-1]["amount"], counted[-1]["amount_source"]) == (2500, "lookup")
    big = stripe_env.data.open_intent(15000)
    start = len(stripe_env.standin.received)
    out = confirm.invoke({"payment_intent": big})
    assert out.startswith("REFUSED by policy (spend_per_call_exceeded"), out
    # Only the broker's own read of the intent reached Stripe; nothing was confirmed.
    assert forwarded_since(stripe_env, start) == [f"GET /v1/payment_intents/{big}"]
    assert stripe_env.data.get(f"/v1/payment_intents/{big}")["status"] != "succeeded"


def test_refund_naming_charge_and_intent_is_refused_before_the_broker(
    stripe_env: StripeDeployment,
) -> None:
    refund = stripe_env.tools("support-agent")["stripe_create_refund"]
    start = len(stripe_env.standin.received)
    out = refund.invoke({"charge": "ch_1", "payment_intent": "pi_1"})
    assert out == "Give exactly one of charge (ch_...) or payment_intent (pi_...) to refund."
    assert forwarded_since(stripe_env, start) == []


def test_tokens_never_reach_the_audit_log_or_the_standin(stripe_env: StripeDeployment) -> None:
    stripe_env.tools("support-agent")["stripe_list_customers"].invoke({})
    seen = b"".join(
        (r.authorization or "").encode() + r.body + r.query.encode()
        for r in stripe_env.standin.received
    )
    logged = b"".join(p.read_bytes() for p in stripe_env.home.root.glob("audit.db*") if p.is_file())
    for token in stripe_env.tokens:
        assert token.encode() not in seen
        assert token.encode() not in logged
    assert STRIPE_KEY.encode() not in logged


def test_agent_supplied_account_and_credential_headers_never_reach_stripe(
    stripe_env: StripeDeployment,
) -> None:
    """Stripe-Account would switch the connected account: a control argument no agent
    may set by header; agent credentials and idempotency keys never cross either."""
    start = len(stripe_env.standin.received)
    with stripe_env.client("support-agent") as client:
        response = client.get(
            "stripe",
            "/v1/customers",
            headers={
                "Stripe-Account": "acct_other",
                "Idempotency-Key": "agent-chosen",
                "X-Api-Key": "sk_test_agent",
                "Stripe-Version": "2024-06-20",
            },
        )
    assert response.status_code == 200
    (seen,) = stripe_env.standin.received[start:]
    names = {name for name, _ in seen.headers}
    assert {"stripe-account", "idempotency-key", "x-api-key"}.isdisjoint(names)
    assert ("stripe-version", "2024-06-20") in seen.headers


def test_every_stripe_post_carries_an_idempotency_key_the_broker_chose(
    stripe_env: StripeDeployment,
) -> None:
    """Chosen before the first attempt, so no retry can charge or refund twice; an
    agent's own key is mapped to one of its token (its retries stay idempotent) and
    never forwarded as is."""

    def key_of_last_post() -> str:
        post = [r for r in stripe_env.standin.received if r.method == "POST"][-1]
        return dict(post.headers)["idempotency-key"]

    args = {"amount": "100", "currency": "usd", "customer": stripe_env.data.customer}
    with stripe_env.client("all-tools") as client:
        client.post("stripe", "/v1/payment_intents", data=args)
        own = key_of_last_post()
        client.post("stripe", "/v1/payment_intents", data=args)
        assert own.startswith("vt-") and key_of_last_post() != own  # one per request
        sent = {"Idempotency-Key": "agent-key-1"}
        first = client.post("stripe", "/v1/payment_intents", data=args, headers=sent)
        mapped = key_of_last_post()
        retry = client.post("stripe", "/v1/payment_intents", data=args, headers=sent)
        assert key_of_last_post() == mapped and mapped != "agent-key-1"
        assert first.status_code == retry.status_code == 200
    with stripe_env.client("all-tools") as other:  # another token, the same agent key
        other.post("stripe", "/v1/payment_intents", data=args, headers=sent)
        assert key_of_last_post() != mapped
    intent = [i for i in stripe_env.intents("all-tools") if i.get("idempotency_key")][-1]
    assert intent["idempotency_key"] == key_of_last_post()
