"""Errors raised by vertex_tools.

Every error the package raises derives from :class:`VertexError`; errors from
the libraries underneath (sqlite3, cryptography, aiohttp, tomllib) are caught at
the boundary and re-raised as one of these ``from`` the original, so callers
never have to know what the broker is built on. No message ever carries a
secret or a token value.

    VertexError
    ├── ConfigError                  a file or setting the operator wrote is wrong
    │   ├── PolicyError              policy.toml did not validate (carries key and line)
    │   ├── HomeError                the data directory is missing, uninitialised or unsafe
    │   └── SessionFormatError       a recorded session file is malformed or cut short
    ├── VaultError
    │   ├── MasterKeyError           no master key, or a malformed one
    │   ├── SecretNotFound           no vault entry of that name
    │   └── InvalidCiphertext        tampered entry or wrong key (deliberately opaque)
    ├── TokenError                   a token string is malformed or cannot be issued
    ├── ConsoleError                 a console login link is wrong, used or expired
    ├── RequestRejected              a request to the broker is malformed (bad path, header, body)
    ├── StoreError                   the state database failed
    │   └── ApprovalError            an approval is unknown, expired or already decided
    ├── AuditError
    │   ├── AuditUnavailable         the log cannot be written: the broker fails closed
    │   ├── AuditIntegrityError      verification found a broken entry (seq, expected, calculated)
    │   └── CheckpointError          a checkpoint is malformed, unsigned or mismatched
    ├── UpstreamError                forwarding failed
    │   ├── UpstreamBlocked          the upstream address is not allowed (SSRF guard)
    │   └── UpstreamTimeout
    └── BrokerError                  raised in the agent process by BrokerClient
        ├── BrokerUnavailable        the broker could not be reached or answered 5xx
        └── BrokerRefused            the broker refused the request (carries the Decision)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vertex_tools.decision import Decision

__all__ = [
    "ApprovalError",
    "AuditError",
    "AuditIntegrityError",
    "AuditUnavailable",
    "BrokerError",
    "BrokerRefused",
    "BrokerUnavailable",
    "CheckpointError",
    "ConfigError",
    "ConsoleError",
    "HomeError",
    "InvalidCiphertext",
    "MasterKeyError",
    "PolicyError",
    "RequestRejected",
    "SecretNotFound",
    "SessionFormatError",
    "StoreError",
    "TokenError",
    "UpstreamBlocked",
    "UpstreamError",
    "UpstreamTimeout",
    "VaultError",
    "VertexError",
]


class VertexError(Exception):
    """Root of every error raised by vertex_tools."""


class ConfigError(VertexError):
    """A file or setting written by the operator is wrong."""


class PolicyError(ConfigError):
    """The policy file failed to parse or validate.

    ``problems`` lists every problem found, each as ``(key, line, message)``;
    ``line`` is 1-based, or ``None`` when the position could not be found.
    """

    def __init__(self, path: str, problems: list[tuple[str, int | None, str]]) -> None:
        self.path = path
        self.problems = problems
        lines = [
            f"{path}:{line if line is not None else '?'}: {key}: {message}"
            for key, line, message in problems
        ]
        super().__init__("invalid policy\n" + "\n".join(lines))


class HomeError(ConfigError):
    """The data directory is missing, not initialised, or has unsafe permissions."""


class SessionFormatError(ConfigError):
    """A recorded session file cannot be replayed: malformed, truncated, unknown version."""


class VaultError(VertexError):
    """The vault could not seal, open or find a secret."""


class MasterKeyError(VaultError):
    """The master key is missing or malformed."""


class SecretNotFound(VaultError):
    """No vault entry has that name."""


class InvalidCiphertext(VaultError):
    """A vault entry failed authentication: tampered, moved, or the wrong key.

    Deliberately says nothing more, like Fernet's ``InvalidToken``.
    """


class TokenError(VertexError):
    """A scoped token is malformed or could not be issued."""


class RequestRejected(VertexError):
    """A request to the broker is malformed: a bad path, header or body."""


class StoreError(VertexError):
    """The state database failed."""


class ConsoleError(VertexError):
    """A console login code is wrong, used or expired (the message names the fix)."""


class ApprovalError(StoreError):
    """An approval is unknown, expired or already decided."""


class AuditError(VertexError):
    """Base of audit log errors."""


class AuditUnavailable(AuditError):
    """The audit log cannot be written; the broker must refuse to forward."""


class AuditIntegrityError(AuditError):
    """The audit chain failed verification at ``seq``.

    ``what`` names the check that failed (``hash``, ``prev_hash``, ``sequence``,
    ``encoding``, ``checkpoint``); ``expected`` and ``calculated`` are hex strings
    where a hash comparison failed.
    """

    def __init__(
        self,
        seq: int,
        what: str,
        detail: str,
        *,
        expected: str | None = None,
        calculated: str | None = None,
    ) -> None:
        self.seq = seq
        self.what = what
        self.detail = detail
        self.expected = expected
        self.calculated = calculated
        message = f"audit log broken at seq {seq}: {what}: {detail}"
        if expected is not None or calculated is not None:
            message += f" (expected {expected}, calculated {calculated})"
        super().__init__(message)


class CheckpointError(AuditError):
    """A checkpoint file is malformed, badly signed, or does not match the log."""


class UpstreamError(VertexError):
    """Forwarding to the upstream failed.

    ``maybe_delivered`` is False only when the request certainly never reached the
    upstream (blocked, refused, never connected); a spend reservation may be
    released only then. Unknown means it may have been acted on.
    """

    def __init__(self, message: str, *, maybe_delivered: bool = True) -> None:
        self.maybe_delivered = maybe_delivered
        super().__init__(message)


class UpstreamBlocked(UpstreamError):
    """The upstream resolved to an address the policy does not allow."""

    def __init__(self, message: str) -> None:
        super().__init__(message, maybe_delivered=False)


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer in time."""


class BrokerError(VertexError):
    """Raised in the agent process when a call through the broker fails."""


class BrokerUnavailable(BrokerError):
    """The broker could not be reached, or failed (5xx)."""


class BrokerRefused(BrokerError):
    """The broker refused the request; ``decision`` says why and which rule."""

    def __init__(self, decision: Decision, status: int) -> None:
        self.decision = decision
        self.status = status
        super().__init__(
            f"{decision.effect.value}: {decision.reason.value}: {decision.message}"
            f" (rule: {decision.rule or '-'}, HTTP {status})"
        )
