"""The official ``stripe`` SDK (v16) through the broker: two values change, nothing else.

``StripeClient(token, base_addresses={"api": "<broker>/proxy/stripe"})``, or the
module-level ``stripe.api_key`` / ``stripe.api_base``. The same catalog, spend
ceilings and audit as the toolkit apply; a refusal is a ``stripe.StripeError``
subclass whose message leads with the broker's reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import stripe

from tests.providers.stripe.standin import STRIPE_KEY, Received
from tests.sdk.conftest import StripeSdk
from vertex_tools.decision import Decision, Reason


def _client(sdk: StripeSdk, grant: str, **kwargs: Any) -> stripe.StripeClient:
    return stripe.StripeClient(
        sdk.deployment.token(grant),
        base_addresses={"api": sdk.deployment.base_url},
        **kwargs,
    )


def _posts(sdk: StripeSdk, path: str) -> list[Received]:
    return [r for r in sdk.standin.received if r.method == "POST" and r.path == path]


def _reason(exc: stripe.StripeError) -> Reason:
    """The broker's decision, read the way vertex_tools.client reads it."""
    assert isinstance(exc.json_body, dict)
    return Decision.from_json(exc.json_body["error"]).reason


@pytest.fixture
def module_api(stripe_sdk: StripeSdk, monkeypatch: pytest.MonkeyPatch) -> None:
    """The module-level API pointed at the broker (monkeypatch restores it afterwards)."""
    monkeypatch.setattr(stripe, "api_key", stripe_sdk.deployment.token("sdk-support"))
    monkeypatch.setattr(stripe, "api_base", stripe_sdk.deployment.base_url)


# allowed calls ---------------------------------------------------------------------------


def test_stripe_client_lists_and_retrieves_customers(stripe_sdk: StripeSdk) -> None:
    client = _client(stripe_sdk, "sdk-support")
    customers = client.v1.customers.list({"email": "ada@example.com", "limit": 100})
    assert stripe_sdk.data.customer in [c.id for c in customers.data]
    one = client.v1.customers.retrieve(stripe_sdk.data.customer)
    assert one.email == "ada@example.com"


def test_module_level_api_lists_customers(stripe_sdk: StripeSdk, module_api: None) -> None:
    customers = stripe.Customer.list(email="ada@example.com", limit=100)
    assert stripe_sdk.data.customer in [c.id for c in customers.data]


def test_upstream_sees_the_vaulted_key_never_the_token(stripe_sdk: StripeSdk) -> None:
    token = stripe_sdk.deployment.token("sdk-support")
    client = stripe.StripeClient(token, base_addresses={"api": stripe_sdk.deployment.base_url})
    before = len(stripe_sdk.standin.received)
    client.v1.customers.create({"name": "Through the SDK"}, {"idempotency_key": "create-1"})
    seen = stripe_sdk.standin.received[before:]
    assert [r.authorization for r in seen] == [f"Bearer {STRIPE_KEY}"]
    for name, value in seen[0].headers:
        assert token not in value, name
        assert token.split(".")[1] not in value, name  # not even the token's id
    assert dict(seen[0].headers)["idempotency-key"] != "create-1"


def test_refund_within_the_ceiling_is_made(stripe_sdk: StripeSdk) -> None:
    charge = stripe_sdk.data.charge(3000)
    refund = _client(stripe_sdk, "sdk-support").v1.refunds.create(
        {"charge": charge, "amount": 1200}
    )
    assert (refund.amount, refund.charge) == (1200, charge)
    intent = stripe_sdk.deployment.audit()[-1]
    assert (intent["operation"], intent["amount"], intent["auth"]) == (
        "refunds.create",
        1200,
        "bearer",
    )


# refusals --------------------------------------------------------------------------------


def test_operation_outside_the_grant_raises_permission_error(stripe_sdk: StripeSdk) -> None:
    with pytest.raises(stripe.PermissionError) as refused:
        _client(stripe_sdk, "sdk-support").v1.balance.retrieve()
    assert refused.value.http_status == 403
    assert str(refused.value).startswith("Request ")  # the broker's request id, like Stripe's
    assert "not_allowed" in str(refused.value)
    assert _reason(refused.value) is Reason.NOT_ALLOWED
    assert refused.value.error is not None
    assert refused.value.error.code == "not_allowed"


def test_module_level_refusal_is_a_stripe_error(stripe_sdk: StripeSdk, module_api: None) -> None:
    with pytest.raises(stripe.PermissionError, match="not_allowed"):
        stripe.Balance.retrieve()


def test_unknown_operation_is_refused(stripe_sdk: StripeSdk) -> None:
    # A resource the catalog does not know: refused, not forwarded.
    with pytest.raises(stripe.PermissionError, match="unknown_operation"):
        _client(stripe_sdk, "sdk-support").v1.products.list()


def test_refund_over_the_per_call_ceiling_is_refused_unsent(stripe_sdk: StripeSdk) -> None:
    charge = stripe_sdk.data.charge(9000)
    sent = len(_posts(stripe_sdk, "/v1/refunds"))
    with pytest.raises(stripe.PermissionError) as refused:
        _client(stripe_sdk, "sdk-spend").v1.refunds.create({"charge": charge, "amount": 5001})
    assert _reason(refused.value) is Reason.SPEND_PER_CALL_EXCEEDED
    assert "spend_per_call_exceeded" in str(refused.value)
    assert len(_posts(stripe_sdk, "/v1/refunds")) == sent


def test_refunds_past_the_daily_ceiling_are_refused(stripe_sdk: StripeSdk) -> None:
    client = _client(stripe_sdk, "sdk-spend")
    first, second = stripe_sdk.data.charge(4000), stripe_sdk.data.charge(4000)
    client.v1.refunds.create({"charge": first})  # a full refund: counted as 4000
    with pytest.raises(stripe.PermissionError) as refused:
        client.v1.refunds.create({"charge": second})
    assert _reason(refused.value) is Reason.SPEND_WINDOW_EXCEEDED


def test_bearer_on_a_grant_without_bearer_is_an_authentication_error(
    stripe_sdk: StripeSdk,
) -> None:
    with pytest.raises(stripe.AuthenticationError, match="bearer_not_allowed") as refused:
        _client(stripe_sdk, "signed-only").v1.customers.list()
    assert refused.value.http_status == 401


# idempotency keys ------------------------------------------------------------------------


def test_a_retry_with_the_same_key_is_forwarded_with_the_same_upstream_key(
    stripe_sdk: StripeSdk,
) -> None:
    client = _client(stripe_sdk, "sdk-support")
    for _ in range(2):
        client.v1.customers.create(
            {"name": "Retried Customer", "email": "retry@example.com"},
            {"idempotency_key": "order-7-customer"},
        )
    keys = [dict(r.headers)["idempotency-key"] for r in _posts(stripe_sdk, "/v1/customers")[-2:]]
    assert keys[0] == keys[1]
    assert keys[0].startswith("vt-")
    claims = [e["idempotency"] for e in stripe_sdk.deployment.audit() if "idempotency" in e]
    assert claims[-2:] == ["new", "same"]


def test_the_same_key_with_other_parameters_is_refused_before_anything_leaves(
    stripe_sdk: StripeSdk,
) -> None:
    client = _client(stripe_sdk, "sdk-support")
    charge = stripe_sdk.data.charge(2500)
    client.v1.refunds.create({"charge": charge, "amount": 100}, {"idempotency_key": "refund-9"})
    sent = len(stripe_sdk.standin.received)
    with pytest.raises(stripe.PermissionError) as refused:
        client.v1.refunds.create({"charge": charge, "amount": 900}, {"idempotency_key": "refund-9"})
    assert _reason(refused.value) is Reason.IDEMPOTENCY_KEY_REUSED
    assert "idempotency_key_reused" in str(refused.value)
    # not even the charge look-up a refund otherwise makes
    assert len(stripe_sdk.standin.received) == sent
    assert stripe_sdk.deployment.audit()[-1]["reason"] == "idempotency_key_reused"


def test_keys_belong_to_their_token(stripe_sdk: StripeSdk) -> None:
    one, other = _client(stripe_sdk, "sdk-support"), _client(stripe_sdk, "sdk-support")
    one.v1.customers.create({"name": "One"}, {"idempotency_key": "shared-key"})
    other.v1.customers.create({"name": "Other"}, {"idempotency_key": "shared-key"})
    keys = [dict(r.headers)["idempotency-key"] for r in _posts(stripe_sdk, "/v1/customers")[-2:]]
    assert keys[0] != keys[1]


class _LosesFirstAnswer(stripe.HTTPClient):
    """The SDK's HTTP client (the seam it offers), losing the answer to the first POST
    after it arrived: what a dropped connection does to a call that was carried out."""

    name = "loses-first-answer"

    def __init__(self) -> None:
        super().__init__()
        self._inner = stripe.new_default_http_client()
        self.lost = 0

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[Any, int, Mapping[str, str]]:
        answer = self._inner.request(method, url, headers, post_data)
        if method == "post" and self.lost == 0:
            self.lost += 1
            raise stripe.APIConnectionError(  # type: ignore[no-untyped-call]
                "the answer was lost", should_retry=True
            )
        return answer

    def close(self) -> None:
        self._inner.close()  # type: ignore[no-untyped-call]


def test_the_sdks_own_retry_reaches_stripe_with_the_same_key(stripe_sdk: StripeSdk) -> None:
    http = _LosesFirstAnswer()
    client = _client(stripe_sdk, "sdk-support", http_client=http, max_network_retries=1)
    charge = stripe_sdk.data.charge(1800)
    refund = client.v1.refunds.create({"charge": charge, "amount": 300})
    assert (http.lost, refund.amount) == (1, 300)
    sent = [r for r in _posts(stripe_sdk, "/v1/refunds") if f"charge={charge}" in r.body.decode()]
    # Stripe answers the second from its idempotency cache (localstripe ignores keys).
    assert len(sent) == 2
    assert dict(sent[0].headers)["idempotency-key"] == dict(sent[1].headers)["idempotency-key"]
    claims = [e["idempotency"] for e in stripe_sdk.deployment.audit() if "idempotency" in e]
    assert claims[-2:] == ["new", "same"]
