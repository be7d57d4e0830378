"""Console credentials: one-time login codes, session ids and CSRF tokens.

Invariants:

1. Codes and session ids are 32 random bytes (``secrets``), URL-safe base64.
2. The store keeps only ``BLAKE3(domain || value)``; each kind of value has its own
   domain, so a hash of one kind never stands for another.
3. The CSRF token is derived from the session id under its own domain: it is bound
   to the session, and knowing it tells nothing about the session id.
4. A form nonce is only random: it says "this rendering of the form", nothing more.
5. None of these values is ever logged, audited or put in an error message.
"""

from __future__ import annotations

import hmac
import secrets

import blake3

__all__ = [
    "CODE_TTL",
    "COOKIE",
    "SESSION_TTL",
    "code_hash",
    "csrf_matches",
    "csrf_token",
    "new_form_nonce",
    "new_login_code",
    "new_session_id",
    "session_hash",
]

CODE_TTL = 600.0
"""A login code is good for 10 minutes, once."""
SESSION_TTL = 8 * 3600.0
"""A console session lasts a working day; then ``vertex console`` again."""
COOKIE = "vertex_console"
_RANDOM_BYTES = 32
_CODE_DOMAIN = b"vertex_tools.console.login-code.v1\x00"
_SESSION_DOMAIN = b"vertex_tools.console.session.v1\x00"
_CSRF_DOMAIN = b"vertex_tools.console.csrf.v1\x00"


def new_login_code() -> str:
    """A fresh one-time login code."""
    return secrets.token_urlsafe(_RANDOM_BYTES)


def new_session_id() -> str:
    """A fresh session id (the cookie's value)."""
    return secrets.token_urlsafe(_RANDOM_BYTES)


def new_form_nonce() -> str:
    """A one-time value for a form whose effect must not happen twice (issuing a token):
    a reload or a Back-and-resubmit posts it again, and is refused."""
    return secrets.token_urlsafe(16)


def _hash(domain: bytes, value: str) -> str:
    return blake3.blake3(domain + value.encode("utf-8", "surrogateescape")).hexdigest()


def code_hash(code: str) -> str:
    """What the store keeps of a login code."""
    return _hash(_CODE_DOMAIN, code)


def session_hash(session_id: str) -> str:
    """What the store keeps of a session id."""
    return _hash(_SESSION_DOMAIN, session_id)


def csrf_token(session_id: str) -> str:
    """The synchronizer token for forms of this session."""
    return _hash(_CSRF_DOMAIN, session_id)


def csrf_matches(session_id: str, sent: str) -> bool:
    """Constant-time comparison of a form's token with the session's."""
    return hmac.compare_digest(csrf_token(session_id).encode(), sent.encode("utf-8", "replace"))
