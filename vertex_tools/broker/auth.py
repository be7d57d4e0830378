"""Step 1 of the pipeline: who is calling.

Two ways in: a signed request (``Authorization: Vertex-v1 ...``, the Python
client) or, only for grants with ``bearer = true``, the token itself the way
official SDKs send a key: ``Authorization: Bearer <token>`` (Stripe, Supabase),
GitHub's ``Authorization: token <token>``, Supabase's ``apikey: <token>``
(alone or beside ``Authorization``). Every failure is a Decision with a 401
reason; nothing here raises for bad input.

Order: collect the credentials, parse, look up, prove possession, then
lifetime and revocation, so nothing about a token's state is told to someone
who cannot prove they hold it. Credentials must agree: a request whose
credential headers carry different tokens, or a signed request that also
carries a bearer credential, is refused (``token_malformed``) rather than
read one way by the broker and another by whoever reads it next.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# libsodium, which verify_signature uses, loaded when the broker starts: a broken
# PyNaCl install then stops the start instead of failing the first signed call.
import nacl.bindings  # noqa: F401

from vertex_tools.decision import Decision, Reason
from vertex_tools.errors import TokenError
from vertex_tools.policy.models import Policy
from vertex_tools.signing import canonical_request, parse_signature_header, verify_signature
from vertex_tools.tokens import TokenRecord, parse_token, verify_bearer

__all__ = ["AuthResult", "TokenLookup", "authenticate"]

TokenLookup = Callable[[str], TokenRecord | None]

# A record to verify against when the id is unknown, so an unknown token costs
# the same work as a known one with the wrong secret. Its public key must be a
# valid one (here the key of the all-zero seed): libsodium refuses a small-order
# key, such as all zeros, before doing the work, which would tell the caller that
# the id is unknown (tests/test_tokens.py checks it is the real key).
_DUMMY_PUBLIC_KEY = bytes.fromhex(
    "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
)
_DUMMY = TokenRecord("tk_aaaaaaaaaaaaaaaa", "", _DUMMY_PUBLIC_KEY, b"\x00" * 32, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Who called: the token record (None when unknown) and how it proved itself."""

    decision: Decision
    record: TokenRecord | None
    claimed_id: str | None
    mode: str
    nonce: str | None = None


def _deny(reason: Reason, message: str, claimed: str | None, mode: str) -> AuthResult:
    return AuthResult(Decision.deny(reason, "authentication", message), None, claimed, mode)


def authenticate(
    *,
    policy: Policy,
    lookup: TokenLookup,
    method: str,
    target: str,
    headers: dict[str, str],
    all_headers: list[tuple[str, str]],
    body: bytes,
    now: float,
) -> AuthResult:
    """Authenticate one request. ``headers`` are lower-cased names, single values."""
    value = headers.get("authorization", "").strip()
    # Every apikey header, not only the first: two that differ must not pass as one.
    apikeys = [v.strip() for k, v in all_headers if k.lower() == "apikey"]
    if not value and not apikeys:
        return _deny(
            Reason.TOKEN_MISSING,
            "no credentials: sign requests with BrokerClient, or send Authorization: Bearer "
            "<token> where the grant allows bearer use",
            None,
            "none",
        )
    scheme = value.split(" ", 1)[0].lower() if value else ""
    if scheme == "vertex-v1":
        if apikeys:
            return _deny(
                Reason.TOKEN_MALFORMED,
                "a signed request carries no other credential: drop the apikey header",
                None,
                "signed",
            )
        return _signed(policy, lookup, method, target, all_headers, body, now, value)
    if value and scheme not in ("bearer", "token"):
        return _deny(
            Reason.TOKEN_MALFORMED,
            "unsupported Authorization scheme; use Vertex-v1 signatures, Bearer or token",
            None,
            "none",
        )
    tokens = {value.split(" ", 1)[1].strip() if " " in value else ""} if value else set()
    tokens.update(apikeys)
    if len(tokens) != 1:
        return _deny(
            Reason.TOKEN_MALFORMED,
            "the credential headers (Authorization, apikey) carry different tokens; "
            "send the same vertex token in each",
            None,
            "bearer",
        )
    return _bearer(policy, lookup, tokens.pop(), now)


def _lifetime(
    policy: Policy, record: TokenRecord, now: float, mode: str, nonce: str | None
) -> AuthResult:
    if record.revoked is not None:
        return AuthResult(
            Decision.deny(
                Reason.TOKEN_REVOKED, "authentication", "this token was revoked; ask for a new one"
            ),
            None,
            record.token_id,
            mode,
        )
    grant = policy.grants.get(record.grant)
    # max_ttl is enforced on use too: a token issued under a looser policy, or before
    # max_ttl was lowered, must not outlive what the policy now allows.
    if grant is not None and now >= record.created + grant.max_ttl_seconds:
        return AuthResult(
            Decision.deny(
                Reason.TOKEN_EXPIRED,
                f"grants.{record.grant}.max_ttl",
                f"this token is older than grant {record.grant!r} allows "
                f"(max_ttl = {grant.max_ttl}); ask for a new one",
            ),
            None,
            record.token_id,
            mode,
        )
    if now >= record.expires:
        return AuthResult(
            Decision.deny(
                Reason.TOKEN_EXPIRED, "authentication", "this token has expired; ask for a new one"
            ),
            None,
            record.token_id,
            mode,
        )
    return AuthResult(
        Decision.allow("authentication", "authenticated"), record, record.token_id, mode, nonce
    )


def _signed(
    policy: Policy,
    lookup: TokenLookup,
    method: str,
    target: str,
    all_headers: list[tuple[str, str]],
    body: bytes,
    now: float,
    value: str,
) -> AuthResult:
    parsed = parse_signature_header(value)
    if parsed is None:
        return _deny(Reason.TOKEN_MALFORMED, "malformed Vertex-v1 signature header", None, "signed")
    record = lookup(parsed.token_id)
    message = canonical_request(
        method=method,
        target=target,
        timestamp=parsed.timestamp,
        nonce=parsed.nonce,
        token_id=parsed.token_id,
        body=body,
        headers=all_headers,
    )
    good = verify_signature((record or _DUMMY).public_key, parsed.signature, message)
    if record is None:
        return _deny(Reason.TOKEN_UNKNOWN, "unknown token", parsed.token_id, "signed")
    if not good:
        return _deny(
            Reason.BAD_SIGNATURE,
            "the request signature does not verify; was the request changed after signing?",
            parsed.token_id,
            "signed",
        )
    skew = policy.settings.clock_skew_seconds
    if abs(now - parsed.timestamp) > skew:
        return _deny(
            Reason.STALE_TIMESTAMP,
            f"the signature timestamp is more than {skew} s from the broker's clock; "
            "check the client's clock",
            parsed.token_id,
            "signed",
        )
    return _lifetime(policy, record, now, "signed", parsed.nonce)


def _bearer(policy: Policy, lookup: TokenLookup, token: str, now: float) -> AuthResult:
    try:
        parsed = parse_token(token)
    except TokenError as exc:
        return _deny(Reason.TOKEN_MALFORMED, str(exc), None, "bearer")
    record = lookup(parsed.token_id)
    good = verify_bearer(parsed, record or _DUMMY)
    if record is None or not good:
        return _deny(Reason.TOKEN_UNKNOWN, "unknown token", parsed.token_id, "bearer")
    grant = policy.grants.get(record.grant)
    if grant is None or not grant.bearer:
        return _deny(
            Reason.BEARER_NOT_ALLOWED,
            f"grant {record.grant!r} does not accept bearer tokens; sign requests with "
            "BrokerClient, or set bearer = true on the grant",
            parsed.token_id,
            "bearer",
        )
    return _lifetime(policy, record, now, "bearer", None)
