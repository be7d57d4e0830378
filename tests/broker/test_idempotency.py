"""Agent idempotency keys: which key counts, and what it is bound to (the digest)."""

from __future__ import annotations

import pytest

from vertex_tools.broker.idempotency import (
    MAX_AGENT_KEY,
    agent_key,
    idempotency_for,
    request_digest,
)
from vertex_tools.errors import RequestRejected

FORM = "application/x-www-form-urlencoded"


def _digest(body: bytes, content_type: str = FORM, **changes: str) -> str:
    fields = {"method": "POST", "upstream": "stripe", "path": "/v1/refunds", "query": ""}
    fields.update(changes)
    return request_digest(content_type=content_type, body=body, **fields)


def test_the_same_parameters_in_another_order_are_the_same_request() -> None:
    assert _digest(b"charge=ch_1&amount=100") == _digest(b"amount=100&charge=ch_1")
    assert _digest(b'{"a": 1, "b": [1, 2]}', "application/json") == _digest(
        b'{"b":[1,2],"a":1}', "application/json; charset=utf-8"
    )


@pytest.mark.parametrize(
    ("body", "changes"),
    [
        (b"charge=ch_1&amount=900", {}),
        (b"charge=ch_1&amount=100", {"path": "/v1/customers"}),
        (b"charge=ch_1&amount=100", {"method": "PUT"}),
        (b"charge=ch_1&amount=100", {"upstream": "stripe-live"}),
        (b"charge=ch_1&amount=100", {"query": "expand[]=charge"}),
        (b"charge=ch_1", {}),
    ],
)
def test_anything_else_is_another_request(body: bytes, changes: dict[str, str]) -> None:
    assert _digest(b"charge=ch_1&amount=100") != _digest(body, **changes)


def test_repeated_fields_keep_their_order() -> None:
    assert _digest(b"expand[]=a&expand[]=b") != _digest(b"expand[]=b&expand[]=a")


def test_a_body_that_does_not_parse_is_compared_byte_for_byte() -> None:
    assert _digest(b"%zz") == _digest(b"%zz")
    assert _digest(b"%zz") != _digest(b"%zy")


def test_only_stripe_posts_have_an_agent_key() -> None:
    headers = [(b"Idempotency-Key", b"k1")]
    assert agent_key("POST", headers, "stripe") == "k1"
    assert agent_key("GET", headers, "stripe") is None
    assert agent_key("POST", headers, "github") is None
    assert agent_key("POST", headers, "http") is None
    assert agent_key("POST", [], "stripe") is None


@pytest.mark.parametrize(
    "headers",
    [
        [(b"idempotency-key", b"a"), (b"Idempotency-Key", b"b")],
        [(b"idempotency-key", b"")],
        [(b"idempotency-key", b"k" * (MAX_AGENT_KEY + 1))],
    ],
)
def test_ambiguous_or_oversized_keys_are_refused(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(RequestRejected):
        agent_key("POST", headers, "stripe")


def test_the_upstream_key_depends_on_token_and_agent_key_only() -> None:
    def upstream(token: str, key: str, request_id: str) -> str | None:
        found = idempotency_for(
            "POST",
            [(b"idempotency-key", key.encode())],
            "stripe",
            request_id=request_id,
            token_id=token,
        )
        return None if found is None else found[1]

    assert upstream("tk_a", "k", "r1") == upstream("tk_a", "k", "r2")
    assert upstream("tk_a", "k", "r1") != upstream("tk_b", "k", "r1")
    assert upstream("tk_a", "k", "r1") != upstream("tk_a", "k2", "r1")
