"""Scoped tokens and request signatures."""

from __future__ import annotations

import contextlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from vertex_tools.broker.auth import _DUMMY
from vertex_tools.errors import TokenError
from vertex_tools.signing import (
    canonical_request,
    parse_signature_header,
    sign_request,
    verify_signature,
)
from vertex_tools.tokens import (
    derive_signing_key,
    mint_token,
    parse_token,
    public_key_bytes,
    verify_bearer,
)

NOW = 1_800_000_000.0


def test_minted_token_round_trips_and_verifies() -> None:
    issued = mint_token("g", now=NOW, ttl=3600)
    parsed = parse_token(issued.token)
    assert parsed.token_id == issued.record.token_id
    assert verify_bearer(parsed, issued.record)
    assert issued.record.expires == NOW + 3600
    other = mint_token("g", now=NOW, ttl=3600)
    assert not verify_bearer(parse_token(other.token), issued.record)


def test_reprs_never_show_the_secret() -> None:
    issued = mint_token("g", now=NOW, ttl=60)
    secret_part = issued.token.split(".")[2]
    for obj in (issued, parse_token(issued.token), issued.record):
        assert secret_part not in repr(obj)
        assert issued.token not in repr(obj)


def test_a_stolen_record_is_not_a_usable_token() -> None:
    """The store keeps a public key and a one-way verifier: neither is the token or
    the signing key, and neither passes as a bearer token or signs a request."""
    issued = mint_token("g", now=NOW, ttl=60)
    record = issued.record
    secret = parse_token(issued.token).secret
    assert secret not in (record.public_key, record.verifier)
    # Using the verifier as if it were the secret gives neither the verifier nor the key.
    from vertex_tools.tokens import ParsedToken

    forged = ParsedToken(record.token_id, record.verifier)
    assert not verify_bearer(forged, record)
    forged_key = derive_signing_key(record.verifier)
    assert public_key_bytes(forged_key) != record.public_key
    assert public_key_bytes(derive_signing_key(secret)) == record.public_key


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "vt1",
        "vt1..",
        "vt2.tk_aaaaaaaaaaaaaaaa." + "A" * 43,
        "Bearer x",
        "vt1.tk_AAAAAAAAAAAAAAAA." + "A" * 43,
        "vt1.tk_aaaaaaaaaaaaaaaa." + "A" * 42,
        "vt1.tk_aaaaaaaaaaaaaaaa." + "A" * 43 + ".x",
    ],
)
def test_malformed_tokens_are_refused_without_echo(bad: str) -> None:
    with pytest.raises(TokenError) as info:
        parse_token(bad)
    if len(bad) > 10:
        assert bad not in str(info.value)


@given(st.text(max_size=200))
def test_parse_token_never_crashes(text: str) -> None:
    with contextlib.suppress(TokenError):
        parse_token(text)


def _sign(token: str, **overrides: object) -> tuple[str, bytes]:
    parsed = parse_token(token)
    fields: dict[str, object] = dict(
        method="POST",
        target="/proxy/echo/items?x=1",
        body=b'{"amount": 1}',
        headers=[("Content-Type", "application/json"), ("x-vertex-run", "r1")],
        timestamp=int(NOW),
    )
    fields.update(overrides)
    header = sign_request(
        derive_signing_key(parsed.secret),
        token_id=parsed.token_id,
        nonce="n" * 24,
        **fields,  # type: ignore[arg-type]
    )
    return header, parsed.secret


def test_signature_binds_every_signed_part() -> None:
    issued = mint_token("g", now=NOW, ttl=60)
    header, _ = _sign(issued.token)
    sig = parse_signature_header(header)
    assert sig is not None and sig.token_id == issued.record.token_id
    base = dict(
        method="POST",
        target="/proxy/echo/items?x=1",
        timestamp=int(NOW),
        nonce="n" * 24,
        token_id=issued.record.token_id,
        body=b'{"amount": 1}',
        headers=[("Content-Type", "application/json"), ("x-vertex-run", "r1")],
    )
    assert verify_signature(issued.record.public_key, sig.signature, canonical_request(**base))  # type: ignore[arg-type]
    for key, value in [
        ("method", "GET"),
        ("target", "/proxy/echo/items?x=2"),
        ("target", "/proxy/other/items?x=1"),
        ("timestamp", int(NOW) + 1),
        ("nonce", "m" * 24),
        ("body", b'{"amount": 9}'),
        ("headers", [("Content-Type", "text/plain"), ("x-vertex-run", "r1")]),
        ("headers", [("Content-Type", "application/json"), ("x-vertex-run", "r2")]),
        ("headers", [("Content-Type", "application/json")]),
        # a forwarded header added on the way (PostgREST schema switch)
        (
            "headers",
            [
                ("Content-Type", "application/json"),
                ("x-vertex-run", "r1"),
                ("Accept-Profile", "private"),
            ],
        ),
    ]:
        changed = {**base, key: value}
        assert not verify_signature(
            issued.record.public_key,
            sig.signature,
            canonical_request(**changed),  # type: ignore[arg-type]
        ), key


def test_headers_that_are_never_forwarded_are_not_signed() -> None:
    """Proxies may add hop-by-hop and tracing headers; they never reach the upstream."""
    issued = mint_token("g", now=NOW, ttl=60)

    def canonical(headers: list[tuple[str, str]]) -> bytes:
        return canonical_request(
            method="GET",
            target="/proxy/echo/items/1",
            timestamp=int(NOW),
            nonce="n" * 24,
            token_id=issued.record.token_id,
            body=b"",
            headers=headers,
        )

    plain = canonical([("Accept", "*/*")])
    assert plain == canonical([("Accept", "*/*"), ("Connection", "close"), ("Via", "1.1 x")])


def test_signature_header_reveals_nothing_of_the_token() -> None:
    issued = mint_token("g", now=NOW, ttl=60)
    header, secret = _sign(issued.token)
    assert issued.token.split(".")[2] not in header
    assert secret.hex() not in header


@given(st.text(max_size=300))
def test_signature_header_parser_never_crashes(text: str) -> None:
    parse_signature_header(text)


@given(
    seed=st.binary(min_size=32, max_size=32),
    message=st.binary(max_size=300),
    flip=st.integers(0, 8 * 96 - 1),
)
def test_signature_checks_agree_with_openssl(seed: bytes, message: bytes, flip: int) -> None:
    """The broker's check (libsodium) accepts exactly what OpenSSL's accepts, here for
    genuine signatures and for every single-bit change of key or signature."""
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public, signature = key.public_key().public_bytes_raw(), key.sign(message)

    def openssl(public: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    assert verify_signature(public, signature, message)
    both = bytearray(public + signature)
    both[flip // 8] ^= 1 << (flip % 8)
    changed_public, changed_signature = bytes(both[:32]), bytes(both[32:])
    expected = openssl(changed_public, changed_signature)
    assert verify_signature(changed_public, changed_signature, message) is expected
    assert expected is False


@pytest.mark.parametrize(("public_len", "signature_len"), [(31, 64), (33, 64), (32, 63), (32, 65)])
def test_a_key_or_signature_of_the_wrong_size_never_verifies(
    public_len: int, signature_len: int
) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    signature = key.sign(b"m")
    public = key.public_key().public_bytes_raw()
    assert verify_signature(public, signature, b"m")
    assert not verify_signature((public * 2)[:public_len], (signature * 2)[:signature_len], b"m")


def test_an_unknown_token_id_is_checked_against_a_real_key() -> None:
    """Unknown ids are verified against a stand-in key, so they cost what a wrong
    signature costs: it must be a real key (libsodium refuses a small-order one, such
    as all zeros, without the work)."""
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    assert _DUMMY.public_key == key.public_key().public_bytes_raw()
    assert verify_signature(_DUMMY.public_key, key.sign(b"m"), b"m")


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_any_bytes_like_key_and_signature_are_checked_alike(kind: type) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    public, signature = key.public_key().public_bytes_raw(), key.sign(b"m")
    assert verify_signature(kind(public), kind(signature), kind(b"m"))
    assert not verify_signature(kind(public), kind(signature), kind(b"n"))
