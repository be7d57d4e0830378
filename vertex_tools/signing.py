"""Request signing: proof of possession of a token without sending it.

The client sends::

    Authorization: Vertex-v1 id=<token id>, ts=<unix seconds>, nonce=<random>, sig=<base64url>

and signs, with the Ed25519 key derived from the token's secret, the bytes of

    vertex_tools.request.v1 \\n METHOD \\n TARGET \\n TS \\n NONCE \\n TOKEN_ID \\n
    BLAKE3(BODY) \\n then every signed header as name:value, sorted by name

where TARGET is the raw request target (path and query) exactly as sent to
the broker, and the signed headers are every header the broker would forward
(``REQUEST_HEADER_ALLOWLIST``: content-type, prefer, accept-profile...) plus
every ``x-vertex-*`` header. So the signature binds the upstream, the path, the
query, the body and everything that can reach the upstream or steer the broker:
nobody between client and broker can add or change any of it. The broker
checks the timestamp against its clock (``settings.clock_skew``) and records
the nonce, so a captured request cannot be replayed, and nothing in the header
reveals the token.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import blake3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vertex_tools.broker.headers import REQUEST_HEADER_ALLOWLIST

__all__ = [
    "SCHEME",
    "SignatureHeader",
    "canonical_request",
    "parse_signature_header",
    "sign_request",
]

SCHEME: Final = "Vertex-v1"
_DOMAIN: Final = b"vertex_tools.request.v1"
_OWS: Final = " \t"  # optional whitespace around header values (RFC 9110)
_HEADER = re.compile(
    r"^Vertex-v1 id=(tk_[a-z2-7]{16}), ts=([0-9]{1,12}), nonce=([A-Za-z0-9_-]{16,64}), "
    r"sig=([A-Za-z0-9_-]{86})$"
)


@dataclass(frozen=True, slots=True)
class SignatureHeader:
    """The parsed ``Authorization: Vertex-v1 ...`` header."""

    token_id: str
    timestamp: int
    nonce: str
    signature: bytes


def parse_signature_header(value: str) -> SignatureHeader | None:
    """Parse the header; ``None`` when it is not a well-formed Vertex-v1 header."""
    match = _HEADER.match(value)
    if match is None:
        return None
    signature = base64.urlsafe_b64decode(match.group(4) + "==")
    return SignatureHeader(match.group(1), int(match.group(2)), match.group(3), signature)


# Read by the broker though never forwarded as sent: an agent's idempotency key decides
# the upstream key and what a retry is bound to, so changing it in transit must break the
# signature.
_ALSO_SIGNED = frozenset({"idempotency-key"})


def signed_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers a signature covers: forwardable ones, ``idempotency-key`` and
    ``x-vertex-*``, in order."""
    return [
        (name.lower(), value)
        for name, value in headers
        if name.lower() in REQUEST_HEADER_ALLOWLIST
        or name.lower() in _ALSO_SIGNED
        or name.lower().startswith("x-vertex-")
    ]


def canonical_request(
    *,
    method: str,
    target: str,
    timestamp: int,
    nonce: str,
    token_id: str,
    body: bytes,
    headers: Iterable[tuple[str, str]],
) -> bytes:
    """The exact bytes that are signed; ``headers`` is filtered by :func:`signed_headers`."""
    lines = [
        method.upper(),
        target,
        str(timestamp),
        nonce,
        token_id,
        blake3.blake3(body).hexdigest(),
    ]
    covered = sorted(signed_headers(headers), key=lambda item: item[0])
    lines.extend(name + ":" + value.strip(_OWS) for name, value in covered)
    return _DOMAIN + b"\n" + "\n".join(lines).encode("utf-8")


def sign_request(
    key: Ed25519PrivateKey,
    *,
    token_id: str,
    method: str,
    target: str,
    body: bytes,
    headers: Iterable[tuple[str, str]],
    timestamp: int,
    nonce: str | None = None,
) -> str:
    """Return the ``Authorization`` header value for a request."""
    nonce = nonce if nonce is not None else secrets.token_urlsafe(18)
    message = canonical_request(
        method=method,
        target=target,
        timestamp=timestamp,
        nonce=nonce,
        token_id=token_id,
        body=body,
        headers=headers,
    )
    signature = base64.urlsafe_b64encode(key.sign(message)).decode("ascii").rstrip("=")
    return f"{SCHEME} id={token_id}, ts={timestamp}, nonce={nonce}, sig={signature}"


def verify_signature(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True when ``signature`` over ``message`` verifies with the raw ``public_key``.

    Verified with libsodium (PyNaCl): the broker checks one signature per signed
    call, and libsodium's check takes about half the time of OpenSSL's (54 against
    108 us here, benchmarks/RESULTS.md). It is also the stricter of the two: it
    refuses non-canonical signatures and small-order keys, so what it accepts
    OpenSSL accepts too (tests/test_tokens.py checks both on the same inputs).
    Imported on first use, so a client that only signs does not load it; the
    broker loads it at start (``broker/auth.py``).
    """
    # Plain bytes (PyNaCl's C call takes nothing else), and exactly 32 and 64 of them:
    # libsodium reads that many, so it is never handed fewer.
    public_key, signature, message = bytes(public_key), bytes(signature), bytes(message)
    if len(public_key) != 32 or len(signature) != 64:
        return False
    from nacl.bindings import crypto_sign_open  # broker side only: see above
    from nacl.exceptions import BadSignatureError

    try:
        crypto_sign_open(signature + message, public_key)
    except BadSignatureError:
        return False
    return True
