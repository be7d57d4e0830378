"""Scoped tokens: issue, parse, and check possession.

A token is ``vt1.<id>.<secret>``: a public id (``tk_`` and 16 base32
characters) and 32 random bytes. The broker stores only values derived from
the secret one way, so a stolen database yields no usable token:

* an Ed25519 public key, whose private half the client derives from the
  secret and signs each request with (proof of possession: a request seen
  in a log neither reveals the token nor can be replayed, see ``signing``);
* a BLAKE3 verifier of the secret, compared in constant time, for grants
  that accept plain ``Authorization: Bearer <token>`` (official SDKs).

Both derivations use BLAKE3's key-derivation mode with distinct contexts, so
neither stored value helps compute the other or the signing key.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Final

import blake3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from vertex_tools.errors import TokenError

__all__ = [
    "IssuedToken",
    "ParsedToken",
    "TokenRecord",
    "derive_signing_key",
    "mint_token",
    "parse_token",
    "verify_bearer",
]

PREFIX: Final = "vt1"
_ID = re.compile(r"^tk_[a-z2-7]{16}\Z")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{43}\Z")
_SIGNING_CONTEXT: Final = "vertex_tools 2026-11 token signing key v1"
_VERIFIER_CONTEXT: Final = "vertex_tools 2026-11 token bearer verifier v1"


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A token split into its id and secret bytes. ``repr`` hides the secret."""

    token_id: str
    secret: bytes

    def __repr__(self) -> str:
        return f"ParsedToken(token_id={self.token_id!r}, secret='***')"


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What the store keeps about a token: nothing that can be used as the token."""

    token_id: str
    grant: str
    public_key: bytes
    verifier: bytes
    created: float
    expires: float
    revoked: float | None = None
    last_used: float | None = None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly minted token: the value, shown once, and the record to store."""

    token: str
    record: TokenRecord

    def __repr__(self) -> str:
        return f"IssuedToken(token='***', record={self.record!r})"


def parse_token(token: str) -> ParsedToken:
    """Split a token string; raise :class:`TokenError` (never echoing it) if malformed."""
    if not isinstance(token, str) or not token.strip():
        raise TokenError("the token is empty")
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise TokenError("not a vertex token (expected vt1.<id>.<secret>)")
    token_id, secret_text = parts[1], parts[2]
    if not _ID.match(token_id) or not _SECRET.match(secret_text):
        raise TokenError("malformed vertex token")
    secret = base64.urlsafe_b64decode(secret_text + "=")
    # One spelling per token: the last character's two unused bits must be zero.
    if len(secret) != 32 or base64.urlsafe_b64encode(secret).decode().rstrip("=") != secret_text:
        raise TokenError("malformed vertex token")
    return ParsedToken(token_id, secret)


def is_token_id(text: str) -> bool:
    """True when ``text`` has the shape of a token id."""
    return bool(_ID.match(text))


def derive_signing_key(secret: bytes) -> Ed25519PrivateKey:
    """The Ed25519 key a client signs requests with."""
    seed = blake3.blake3(secret, derive_key_context=_SIGNING_CONTEXT).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def _verifier(secret: bytes) -> bytes:
    return blake3.blake3(secret, derive_key_context=_VERIFIER_CONTEXT).digest()


def public_key_bytes(key: Ed25519PrivateKey) -> bytes:
    """Raw 32-byte public key."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def load_public_key(raw: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from its 32 raw bytes."""
    return Ed25519PublicKey.from_public_bytes(raw)


def mint_token(grant: str, *, now: float, ttl: int, rand: bytes | None = None) -> IssuedToken:
    """Create a token for ``grant`` valid for ``ttl`` seconds from ``now``.

    ``rand`` (42 bytes) is the injectable random source for tests.
    """
    if ttl <= 0:
        raise TokenError("ttl must be positive")
    material = rand if rand is not None else secrets.token_bytes(42)
    if len(material) != 42:
        raise TokenError("rand must be 42 bytes")
    token_id = "tk_" + base64.b32encode(material[:10]).decode("ascii").lower()
    secret = material[10:]
    secret_text = base64.urlsafe_b64encode(secret).decode("ascii").rstrip("=")
    record = TokenRecord(
        token_id=token_id,
        grant=grant,
        public_key=public_key_bytes(derive_signing_key(secret)),
        verifier=_verifier(secret),
        created=now,
        expires=now + ttl,
    )
    return IssuedToken(f"{PREFIX}.{token_id}.{secret_text}", record)


def verify_bearer(parsed: ParsedToken, record: TokenRecord) -> bool:
    """Constant-time check that ``parsed`` is the token ``record`` was issued for."""
    return hmac.compare_digest(_verifier(parsed.secret), record.verifier)
