"""Operator actions on a data directory: vault, tokens, approvals, console sign-in.
Each one is audited.

The CLI and the demo both go through here, so an action taken either way
leaves the same audit entry. Entries name things (vault entry, token id,
grant) and never carry a secret or a token value.

Audit first: the entry is appended before the action is taken, so an action
the log cannot record is not taken (AuditUnavailable). If the action then
fails, an ``<action>_failed`` entry follows.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from vertex_tools._closing import Closing
from vertex_tools.audit import EntryKind
from vertex_tools.console import credentials
from vertex_tools.errors import ApprovalError, ConfigError, ConsoleError, TokenError, VertexError
from vertex_tools.home import ENV_MASTER_KEY, Home, operator_name
from vertex_tools.policy import LoadedPolicy
from vertex_tools.policy.durations import parse_duration
from vertex_tools.store import ApprovalRecord, ApprovalState, ConsoleSession
from vertex_tools.store.location import PostgresLocation, SqliteLocation, StoreLocation
from vertex_tools.tokens import (
    PREFIX,
    IssuedToken,
    TokenRecord,
    is_token_id,
    mint_token,
    parse_token,
)
from vertex_tools.vault import MasterKey, Vault, VaultEntryInfo, load_keyring, rotate_key_file
from vertex_tools.vault._rows import VaultRows

__all__ = ["Admin"]

T = TypeVar("T")


class Admin(Closing):
    """Opens the deployment's databases for one operator session.

    ``store`` is where the state lives (default: SQLite in ``home``); with a
    shared PostgreSQL store, every replica sees the action at once. ``actor`` names
    who acts in the audit log (default: the OS user; the console passes its own).
    """

    def __init__(
        self,
        home: Home,
        environ: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.time,
        store: StoreLocation | None = None,
        actor: str | None = None,
    ) -> None:
        self.actor = actor if actor is not None else operator_name()
        self.location = store if store is not None else SqliteLocation(home)
        self.location.require()
        self.home = home
        self.environ = environ
        self.clock = clock
        self.store = self.location.open_state()
        try:
            self.audit = self.location.open_audit(clock=clock)
        except BaseException:
            self.store.close()
            raise
        self._vault: Vault | None = None

    @property
    def vault(self) -> Vault:
        """The vault, opened on first use (it needs the master key)."""
        if self._vault is None:
            keyring = load_keyring(self.home.root, self.environ)
            self._vault = self.location.open_vault(keyring)
        return self._vault

    def _audit(self, action: str, **data: Any) -> None:
        self.audit.append(EntryKind.ADMIN, {"action": action, "actor": self.actor, **data})

    def _audited(self, action: str, do: Callable[[], T], **data: Any) -> T:
        self._audit(action, **data)
        try:
            return do()
        except VertexError as exc:
            with contextlib.suppress(VertexError):
                self._audit(f"{action}_failed", error=type(exc).__name__, **data)
            raise

    def close(self) -> None:
        """Close every database."""
        if self._vault is not None:
            self._vault.close()
        self.store.close()
        self.audit.close()

    # vault -------------------------------------------------------------------------------

    def vault_put(self, name: str, provider: str, secret: str) -> VaultEntryInfo:
        """Seal ``secret`` under ``name``; replaces an existing entry of that name."""
        vault = self.vault
        return self._audited(
            "vault_put",
            lambda: vault.put(name, provider, secret),
            name=name,
            provider=provider,
            key_id=vault.keyring.primary.key_id,
        )

    def vault_list(self) -> list[VaultEntryInfo]:
        """Names, providers and dates; never values."""
        return self.vault.list()

    def vault_remove(self, name: str) -> None:
        """Delete an entry."""
        vault = self.vault
        self._audited("vault_rm", lambda: vault.remove(name), name=name)

    def vault_rotate_key(self, new_key: MasterKey | None = None) -> tuple[str, str, int]:
        """Re-encrypt every entry under a new master key.

        With a key file, a new file replaces it (crash-safe). With
        ``VERTEX_MASTER_KEY``, ``new_key`` must be given; the operator then
        sets the variable to it. A running broker reloads the keyring by itself.
        """
        old_id = self.vault.keyring.primary.key_id
        if self.environ.get(ENV_MASTER_KEY):
            if new_key is None:
                raise ConfigError(
                    f"the master key comes from {ENV_MASTER_KEY}: pass the new key on stdin "
                    "with --new-key-stdin, then set the variable to it"
                )
            vault, key = self.vault, new_key
            return self._audited(
                "vault_rotate_key",
                lambda: (old_id, key.key_id, vault.reencrypt_all(key)),
                old_key_id=old_id,
                source="environment",
            )
        self.vault.close()
        self._vault = None
        home, location = self.home, self.location
        rows: Path | VaultRows = home.state_db
        if isinstance(location, PostgresLocation):
            from vertex_tools.store.pg_vault import PostgresVaultRows

            rows = PostgresVaultRows(location.dsn)
        return self._audited(
            "vault_rotate_key",
            lambda: rotate_key_file(home.root, rows),
            old_key_id=old_id,
            source="key file",
        )

    # policy (shared store) ----------------------------------------------------------------

    def policy_push(self, loaded: LoadedPolicy, source: bytes) -> int:
        """Store a validated policy as the newest version every replica serves."""
        policies = self.location.policies()
        if policies is None:
            raise ConfigError(
                "policy push needs a shared store (--store postgresql://... or VERTEX_STORE); "
                f"with SQLite the broker serves {self.home.policy} (or --policy FILE)"
            )
        now = self.clock()
        with policies:
            return self._audited(
                "policy_push",
                lambda: policies.push(source, loaded.digest, now=now, by=self.actor),
                policy=loaded.path,
                digest=loaded.digest,
            )

    # tokens ------------------------------------------------------------------------------

    def token_issue(self, loaded: LoadedPolicy, grant: str, ttl: str | None) -> IssuedToken:
        """Mint and store a token for ``grant``; ``ttl`` defaults to the grant's and is capped."""
        spec = loaded.policy.grants.get(grant)
        if spec is None:
            known = ", ".join(sorted(loaded.policy.grants)) or "none"
            raise TokenError(f"no grant {grant!r} in {loaded.path} (grants: {known})")
        try:
            seconds = parse_duration(ttl) if ttl else spec.ttl_seconds
        except ValueError as exc:
            raise TokenError(f"--ttl: {exc}") from exc
        if seconds > spec.max_ttl_seconds:
            raise TokenError(
                f"--ttl {ttl} is longer than grant {grant!r} allows (max_ttl = {spec.max_ttl})"
            )
        issued = mint_token(grant, now=self.clock(), ttl=seconds)
        store = self.store
        self._audited(
            "token_issue",
            lambda: store.add_token(issued.record),
            token_id=issued.record.token_id,
            grant=grant,
            expires=int(issued.record.expires),
        )
        return issued

    def token_list(self) -> list[TokenRecord]:
        """Every token, newest first."""
        return self.store.list_tokens()

    def token_revoke(self, token_or_id: str) -> TokenRecord:
        """Revoke by id, or by the whole token (one found in a log, say); effective on the
        next request. Unknown ids are an error; a token value is never echoed."""
        token_id = token_or_id.strip()
        if token_id.startswith(PREFIX + "."):
            token_id = parse_token(token_id).token_id
        if not is_token_id(token_id):
            raise TokenError("not a token id (tk_ and 16 letters and digits) or a vertex token")
        existing = self.store.get_token(token_id)
        if existing is None:
            raise TokenError(f"no token {token_id}; `vertex token list` shows the ids")
        store, now = self.store, self.clock()
        record = self._audited(
            "token_revoke",
            lambda: store.revoke_token(token_id, now),
            token_id=token_id,
            grant=existing.grant,
        )
        assert record is not None
        return record

    # approvals -----------------------------------------------------------------------------

    def approval_list(
        self, state: ApprovalState | None = ApprovalState.PENDING
    ) -> list[ApprovalRecord]:
        """Held requests (pending by default), newest first."""
        return self.store.list_approvals(state)

    def approval_get(self, approval_id: str) -> ApprovalRecord:
        """One approval; ApprovalError naming the fix when unknown."""
        record = self.store.get_approval(approval_id.strip())
        if record is None:
            raise ApprovalError(
                f"no approval {approval_id!r}; `vertex approvals list --all` shows them"
            )
        return record

    def approval_decide(
        self, approval_id: str, *, approve: bool, note: str | None = None
    ) -> ApprovalRecord:
        """Approve or deny a pending request (audited first). The agent's retry of the
        exact same request then goes ahead once, or is refused."""
        existing = self.approval_get(approval_id)
        store, now, actor = self.store, self.clock(), self.actor
        return self._audited(
            "approval_approve" if approve else "approval_deny",
            lambda: store.decide_approval(
                existing.approval_id, approve=approve, now=now, by=actor, note=note
            ),
            approval_id=existing.approval_id,
            token_id=existing.token_id,
            grant=existing.grant,
            digest=existing.digest,
            operation=existing.request.get("operation"),
            note=note,
        )

    # the operator console ----------------------------------------------------------------

    def console_login_code(self, ttl: float = credentials.CODE_TTL) -> tuple[str, float]:
        """A one-time console login code and when it expires. Only its hash is stored;
        the audit entry records that a code was made, never the code."""
        code, now = credentials.new_login_code(), self.clock()
        store, expires = self.store, now + ttl
        self._audited(
            "console_code_issue",
            lambda: store.add_console_login(
                credentials.code_hash(code), issued_by=self.actor, created=now, expires=expires
            ),
            expires=int(expires),
        )
        return code, expires

    def console_login(self, code: str) -> tuple[str, ConsoleSession]:
        """Redeem a login code (once, before it expires): a new session id and its session.
        ConsoleError when the code is unknown, used or expired (audited either way)."""
        session_id, now = credentials.new_session_id(), self.clock()
        session = self.store.redeem_console_login(
            credentials.code_hash(code.strip()),
            credentials.session_hash(session_id),
            now=now,
            expires=now + credentials.SESSION_TTL,
        )
        if session is None:
            self._audit("console_login_refused")
            raise ConsoleError(
                "this console login link is wrong, used or expired: run `vertex console` "
                "for a new one"
            )
        try:
            self._audit("console_login", operator=session.operator, expires=int(session.expires))
        except VertexError:
            # A sign-in the log cannot record does not stand.
            self.store.end_console_session(credentials.session_hash(session_id), now)
            raise
        return session_id, session

    def console_logout(self, session_id: str) -> None:
        """End a console session (idempotent)."""
        store, now = self.store, self.clock()
        self._audited(
            "console_logout",
            lambda: store.end_console_session(credentials.session_hash(session_id), now),
        )
