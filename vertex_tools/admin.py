"""Operator actions on a data directory: vault, tokens. Each one is audited.

The CLI and the demo both go through here, so an action taken either way
leaves the same audit entry. Entries name things (vault entry, token id,
grant) and never carry a secret or a token value.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from vertex_tools.audit import AuditLog, EntryKind
from vertex_tools.errors import ConfigError, TokenError
from vertex_tools.home import ENV_MASTER_KEY, Home
from vertex_tools.policy import LoadedPolicy
from vertex_tools.policy.durations import parse_duration
from vertex_tools.store import SqliteStore
from vertex_tools.tokens import IssuedToken, TokenRecord, is_token_id, mint_token
from vertex_tools.vault import MasterKey, Vault, VaultEntryInfo, load_keyring, rotate_key_file

__all__ = ["Admin"]


class Admin:
    """Opens the data directory's databases for one operator session."""

    def __init__(
        self, home: Home, environ: Mapping[str, str], *, clock: Callable[[], float] = time.time
    ) -> None:
        home.require()
        self.home = home
        self.environ = environ
        self.clock = clock
        self.store = SqliteStore(home.state_db)
        self.audit = AuditLog(home.audit_db, clock=clock)
        self._vault: Vault | None = None

    @property
    def vault(self) -> Vault:
        """The vault, opened on first use (it needs the master key)."""
        if self._vault is None:
            self._vault = Vault(self.home.state_db, load_keyring(self.home.root, self.environ))
        return self._vault

    def _audit(self, action: str, **data: Any) -> None:
        self.audit.append(EntryKind.ADMIN, {"action": action, "actor": _actor(), **data})

    def close(self) -> None:
        """Close every database."""
        if self._vault is not None:
            self._vault.close()
        self.store.close()
        self.audit.close()

    def __enter__(self) -> Admin:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # vault -------------------------------------------------------------------------------

    def vault_put(self, name: str, provider: str, secret: str) -> VaultEntryInfo:
        """Seal ``secret`` under ``name``; replaces an existing entry of that name."""
        info = self.vault.put(name, provider, secret)
        self._audit("vault_put", name=name, provider=provider, key_id=info.key_id)
        return info

    def vault_list(self) -> list[VaultEntryInfo]:
        """Names, providers and dates; never values."""
        return self.vault.list()

    def vault_remove(self, name: str) -> None:
        """Delete an entry."""
        self.vault.remove(name)
        self._audit("vault_rm", name=name)

    def vault_rotate_key(self, new_key: MasterKey | None = None) -> tuple[str, str, int]:
        """Re-encrypt every entry under a new master key.

        With a key file, a new file replaces it (crash-safe). With
        ``VERTEX_MASTER_KEY``, ``new_key`` must be given; the operator then
        sets the variable to it.
        """
        if self.environ.get(ENV_MASTER_KEY):
            if new_key is None:
                raise ConfigError(
                    f"the master key comes from {ENV_MASTER_KEY}: pass the new key on stdin "
                    "with --new-key-stdin, then set the variable to it"
                )
            old_id = self.vault.keyring.primary.key_id
            count = self.vault.reencrypt_all(new_key)
            result = (old_id, new_key.key_id, count)
        else:
            if self._vault is not None:
                self._vault.close()
                self._vault = None
            result = rotate_key_file(self.home.root, self.home.state_db)
        self._audit(
            "vault_rotate_key", old_key_id=result[0], new_key_id=result[1], entries=result[2]
        )
        return result

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
        self.store.add_token(issued.record)
        self._audit(
            "token_issue",
            token_id=issued.record.token_id,
            grant=grant,
            expires=int(issued.record.expires),
        )
        return issued

    def token_list(self) -> list[TokenRecord]:
        """Every token, newest first."""
        return self.store.list_tokens()

    def token_revoke(self, token_id: str) -> TokenRecord:
        """Revoke; effective on the next request. Unknown ids are an error."""
        if not is_token_id(token_id):
            raise TokenError(f"{token_id!r} is not a token id (tk_ and 16 letters and digits)")
        record = self.store.revoke_token(token_id, self.clock())
        if record is None:
            raise TokenError(f"no token {token_id}; `vertex token list` shows the ids")
        self._audit("token_revoke", token_id=token_id, grant=record.grant)
        return record


def _actor() -> str:
    try:
        return os.getlogin()
    except OSError:
        return str(os.getuid())
