"""The vault: AES-256-GCM entries in one table of a shared SQLite file.

The table is kept by a :class:`VaultRows` (SQLite by default, PostgreSQL for
replicas); this module alone seals and opens.

Invariants:

1. Plaintext is never written: only ``(key_id, nonce, ciphertext)`` reach the
   database, and no error message, repr or str contains a secret.
2. Every entry is sealed with a fresh 12-byte random nonce and bound to its name
   and provider by the associated data, so a ciphertext moved to another row or
   relabelled fails to open.
3. Every failure to open an entry raises the same :class:`InvalidCiphertext`.
4. Writes run in transactions that exclude every other writer and are durable
   when committed (SQLite: ``BEGIN IMMEDIATE``, ``synchronous=FULL``); a
   committed re-encryption survives power loss, which key rotation relies on.
"""

from __future__ import annotations

import os
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag

from vertex_tools._closing import Closing
from vertex_tools.errors import InvalidCiphertext, SecretNotFound, StoreError, VaultError
from vertex_tools.vault._keys import Keyring, MasterKey, invalid_ciphertext
from vertex_tools.vault._rows import SqliteVaultRows, VaultRows
from vertex_tools.vault._secret import SecretValue, VaultEntryInfo

__all__ = ["MAX_SECRET_BYTES", "NAME_PATTERN", "PROVIDER_PATTERN", "Vault"]

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
PROVIDER_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
MAX_SECRET_BYTES = 8 * 1024

_NONCE_BYTES = 12
_AD_DOMAIN = b"vertex_tools.vault.v1\x00"
_NAME_RE = re.compile(NAME_PATTERN.removeprefix("^").removesuffix("$"), re.ASCII)
_PROVIDER_RE = re.compile(PROVIDER_PATTERN.removeprefix("^").removesuffix("$"), re.ASCII)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise VaultError(f"invalid vault entry name {name!r:.80}: must match {NAME_PATTERN}")


def _check_provider(provider: str) -> None:
    if not isinstance(provider, str) or not _PROVIDER_RE.fullmatch(provider):
        raise VaultError(f"invalid provider {provider!r:.80}: must match {PROVIDER_PATTERN}")


def _encode_secret(secret: str) -> bytes:
    """Validate ``secret`` and return its UTF-8 bytes; errors never quote it."""
    if not isinstance(secret, str):
        raise VaultError(f"a secret must be a str, not {type(secret).__name__}")
    if not secret:
        raise VaultError("the secret is empty")
    if len(secret) > MAX_SECRET_BYTES:
        raise VaultError(f"the secret is longer than {MAX_SECRET_BYTES} bytes")
    for char in secret:
        category = unicodedata.category(char)
        # The broker puts secrets in HTTP headers: CR, LF or NUL would allow header
        # injection, so refuse every control character, not only those three.
        if category == "Cc":
            raise VaultError(
                "the secret contains a control character (such as a newline, carriage "
                "return, tab or NUL); a secret must be a single line of printable text"
            )
        if category == "Cs":
            raise VaultError("the secret contains a lone surrogate and is not valid Unicode")
    data = secret.encode("utf-8")
    if len(data) > MAX_SECRET_BYTES:
        raise VaultError(f"the secret is longer than {MAX_SECRET_BYTES} bytes")
    return data


def _associated_data(name: str, provider: str) -> bytes:
    parts = [_AD_DOMAIN]
    for value in (name, provider):
        encoded = value.encode("utf-8")
        parts.append(len(encoded).to_bytes(4, "big"))
        parts.append(encoded)
    return b"".join(parts)


def _seal(key: MasterKey, plaintext: bytes, name: str, provider: str) -> tuple[bytes, bytes]:
    nonce = os.urandom(_NONCE_BYTES)
    ciphertext = key._aead.encrypt(nonce, plaintext, _associated_data(name, provider))
    return nonce, ciphertext


def _open(keyring: Keyring, row: dict[str, Any]) -> bytes:
    """Authenticate and decrypt one row; any failure is the opaque InvalidCiphertext."""
    name, provider = row["name"], row["provider"]
    key_id, nonce, ciphertext = row["key_id"], row["nonce"], row["ciphertext"]
    if not (
        isinstance(name, str)
        and isinstance(provider, str)
        and isinstance(key_id, str)
        and isinstance(nonce, bytes)
        and len(nonce) == _NONCE_BYTES
        and isinstance(ciphertext, bytes)
    ):
        raise invalid_ciphertext()
    key = keyring.get(key_id)
    try:
        return key._aead.decrypt(nonce, ciphertext, _associated_data(name, provider))
    except (InvalidTag, ValueError) as exc:
        raise invalid_ciphertext() from exc


def _to_info(row: dict[str, Any]) -> VaultEntryInfo:
    created, updated = row["created"], row["updated"]
    if not (isinstance(created, int) and isinstance(updated, int)):
        raise VaultError(f"vault entry {row['name']!r:.80} has malformed timestamps")
    return VaultEntryInfo(
        name=str(row["name"]),
        provider=str(row["provider"]),
        created=datetime.fromtimestamp(created, UTC),
        updated=datetime.fromtimestamp(updated, UTC),
        key_id=str(row["key_id"]),
    )


class Vault(Closing):
    """Secrets sealed with AES-256-GCM in a ``vault_entries`` table.

    ``db`` is a SQLite file (the table lives beside the state tables and is
    created if missing) or any :class:`VaultRows`, such as the shared PostgreSQL
    database. ``keyring.primary`` seals; any key in the keyring opens. ``clock``
    returns Unix seconds and dates ``created``/``updated``. Safe to share
    between threads.
    """

    def __init__(
        self,
        db: Path | VaultRows,
        keyring: Keyring,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Open the vault's table (a path: created if needed; WAL, 5 s busy timeout)."""
        self._rows: VaultRows = SqliteVaultRows(db) if isinstance(db, Path) else db
        self._keyring = keyring
        self._clock = clock
        self._lock = threading.RLock()

    @property
    def keyring(self) -> Keyring:
        """The keys in use; after :meth:`reencrypt_all` the new key is primary."""
        return self._keyring

    def put(self, name: str, provider: str, secret: str) -> VaultEntryInfo:
        """Seal ``secret`` under ``name``, replacing any entry of that name.

        A replaced entry keeps its ``created`` date. Names must match
        :data:`NAME_PATTERN`, providers :data:`PROVIDER_PATTERN`; a secret must be
        non-empty, at most 8 KiB of UTF-8, and free of control characters.
        """
        _check_name(name)
        _check_provider(provider)
        plaintext = _encode_secret(secret)
        now = int(self._clock())
        with self._transaction():
            # Seal under the lock, so a concurrent reencrypt_all cannot retire the key.
            key = self._keyring.primary
            nonce, ciphertext = _seal(key, plaintext, name, provider)
            self._rows.upsert(name, provider, key.key_id, nonce, ciphertext, now)
            row = self._rows.row(name)
        if row is None:  # written in this very transaction: only a broken database
            raise StoreError(
                f"vault database {self._rows.location}: entry {name!r} vanished after write"
            )
        return _to_info(row)

    def get(self, name: str) -> tuple[VaultEntryInfo, SecretValue]:
        """Open the entry ``name``.

        Raises :class:`SecretNotFound` if there is none, and the opaque
        :class:`InvalidCiphertext` if it fails authentication for any reason.
        """
        _check_name(name)
        with self._transaction(write=False):
            row = self._rows.row(name)
        if row is None:
            raise SecretNotFound(
                f"no vault entry named {name!r}: add it with "
                f"`vertex vault put {name} --provider P` (the secret is read from stdin)"
            )
        plaintext = _open(self._keyring, row)
        try:
            text = plaintext.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise invalid_ciphertext() from exc
        return _to_info(row), SecretValue(text)

    def list(self) -> list[VaultEntryInfo]:
        """Every entry's metadata, sorted by name; nothing is decrypted."""
        with self._transaction(write=False):
            rows = self._rows.rows()
        return [_to_info(row) for row in rows]

    def remove(self, name: str) -> None:
        """Delete the entry ``name``; :class:`SecretNotFound` if there is none."""
        _check_name(name)
        with self._transaction():
            deleted = self._rows.delete(name)
        if deleted == 0:
            raise SecretNotFound(f"no vault entry named {name!r}: nothing to remove")

    def reencrypt_all(self, new_key: MasterKey) -> int:
        """Re-seal every entry with ``new_key`` in one transaction; return the count.

        Every entry must open with the current keyring; if one does not, the
        transaction is rolled back and nothing changes. Afterwards this vault seals
        with ``new_key`` and still opens with its previous keys.
        """
        # The (reentrant) lock spans the commit and the keyring swap: no put in this
        # process can seal with the old key once the re-encryption is committed.
        with self._lock:
            with self._transaction():
                rows = self._rows.rows()
                for row in rows:
                    try:
                        plaintext = _open(self._keyring, row)
                    except InvalidCiphertext as exc:
                        # A note, not the message: every failure keeps the same message.
                        exc.add_note(f"vault entry: {row['name']!r:.80}")
                        raise
                    nonce, ciphertext = _seal(new_key, plaintext, row["name"], row["provider"])
                    self._rows.reseal(row["name"], new_key.key_id, nonce, ciphertext)
            old = (self._keyring.primary, *self._keyring.others)
            self._keyring = Keyring(new_key, tuple(k for k in old if k != new_key))
        return len(rows)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._rows.close()

    def __repr__(self) -> str:
        """Show where the entries are and the key ids, never a key or a secret."""
        return f"Vault(db_path={self._rows.location!r}, key_ids={list(self._keyring.key_ids)!r})"

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[None]:
        """Hold the lock and a transaction of the rows' database."""
        with self._lock, self._rows.transaction(write=write):
            yield
