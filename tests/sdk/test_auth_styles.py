"""How official SDKs present a key, all accepted for ``bearer = true`` grants and all
replaced by the vaulted secret: ``Authorization: Bearer`` (Stripe, Supabase),
``Authorization: token`` (PyGithub, githubkit), ``apikey`` (Supabase, with or
without ``Authorization``). Credential headers that disagree are refused, and so
is a signed request that also carries a token.

Driven with plain HTTP against the Stripe deployment, header by header.
"""

from __future__ import annotations

import httpx
import pytest

from tests.providers.stripe.standin import STRIPE_KEY
from tests.sdk.conftest import StripeSdk
from vertex_tools.client import VertexAuth
from vertex_tools.decision import Decision, Reason

ACCEPTED = [
    pytest.param(lambda t: [("Authorization", f"Bearer {t}")], id="bearer"),
    pytest.param(lambda t: [("Authorization", f"token {t}")], id="github-token"),
    pytest.param(lambda t: [("apikey", t)], id="apikey-alone"),
    pytest.param(
        lambda t: [("apikey", t), ("Authorization", f"Bearer {t}")], id="apikey-and-bearer"
    ),
    pytest.param(lambda t: [("apikey", t), ("apikey", t)], id="apikey-twice-same"),
]


def _get(sdk: StripeSdk, headers: list[tuple[str, str]]) -> httpx.Response:
    return httpx.get(
        f"{sdk.deployment.base_url}/v1/customers", headers=headers, params={"limit": 1}
    )


@pytest.mark.parametrize("style", ACCEPTED)
def test_each_style_is_accepted_and_replaced(stripe_sdk: StripeSdk, style: object) -> None:
    token = stripe_sdk.deployment.token("sdk-support")
    before = len(stripe_sdk.standin.received)
    answer = _get(stripe_sdk, style(token))  # type: ignore[operator]
    assert answer.status_code == 200, answer.text
    (seen,) = stripe_sdk.standin.received[before:]
    assert seen.authorization == f"Bearer {STRIPE_KEY}"
    assert "apikey" not in dict(seen.headers)
    assert not [name for name, value in seen.headers if token in value]


def test_credentials_carrying_different_tokens_are_refused(stripe_sdk: StripeSdk) -> None:
    mine, other = (stripe_sdk.deployment.token("sdk-support") for _ in range(2))
    before = len(stripe_sdk.standin.received)
    for headers in (
        [("apikey", mine), ("Authorization", f"Bearer {other}")],
        [("apikey", mine), ("apikey", other)],
        [("apikey", mine), ("Authorization", f"token {other}")],
    ):
        answer = _get(stripe_sdk, headers)
        assert answer.status_code == 401
        assert Decision.from_json(answer.json()["error"]).reason is Reason.TOKEN_MALFORMED
        assert "different tokens" in answer.json()["error"]["message"]
    assert len(stripe_sdk.standin.received) == before


@pytest.mark.parametrize(
    "style",
    [
        pytest.param(lambda t: [("Authorization", f"Bearer {t}")], id="bearer"),
        pytest.param(lambda t: [("apikey", t)], id="apikey"),
    ],
)
def test_a_grant_without_bearer_refuses_every_plain_style(
    stripe_sdk: StripeSdk, style: object
) -> None:
    token = stripe_sdk.deployment.token("signed-only")
    answer = _get(stripe_sdk, style(token))  # type: ignore[operator]
    assert answer.status_code == 401
    assert answer.json()["error"]["reason"] == "bearer_not_allowed"


def test_a_signed_request_carrying_a_token_too_is_refused(stripe_sdk: StripeSdk) -> None:
    token = stripe_sdk.deployment.token("signed-only")

    def add_apikey(request: httpx.Request) -> None:
        # after signing: what a client mixing the two styles would send
        request.headers["apikey"] = token

    url = f"{stripe_sdk.deployment.base_url}/v1/customers"
    with httpx.Client(auth=VertexAuth(token), event_hooks={"request": [add_apikey]}) as mixed:
        answer = mixed.get(url)
    assert answer.status_code == 401
    assert answer.json()["error"]["reason"] == "token_malformed"
    with httpx.Client(auth=VertexAuth(token)) as signed:
        assert signed.get(url).status_code == 200  # the refusal was the mix, not the token


def test_a_signed_idempotency_key_cannot_be_changed_in_transit(stripe_sdk: StripeSdk) -> None:
    token = stripe_sdk.deployment.token("signed-only")
    url = f"{stripe_sdk.deployment.base_url}/v1/customers"

    def swap_key(request: httpx.Request) -> None:
        request.headers["Idempotency-Key"] = "someone-elses"

    with httpx.Client(auth=VertexAuth(token)) as signed:
        assert signed.get(url, headers={"Idempotency-Key": "mine"}).status_code == 200
    with httpx.Client(auth=VertexAuth(token), event_hooks={"request": [swap_key]}) as changed:
        answer = changed.get(url, headers={"Idempotency-Key": "mine"})
    assert answer.status_code == 401
    assert answer.json()["error"]["reason"] == "bad_signature"
