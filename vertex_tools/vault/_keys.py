"""Master keys: generation, encoding, key files and the keyring.

Invariants:

1. A :class:`MasterKey` always holds exactly 32 bytes; its repr, str and every
   error message show at most its ``key_id``, never the bytes.
2. A key file is created with mode 0600 and never overwritten; a key file that
   group or others can access is refused, not repaired.
3. An unknown ``key_id`` raises the same :class:`InvalidCiphertext` as a
   failed tag check, so a caller cannot tell them apart.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import blake3
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vertex_tools.errors import InvalidCiphertext, MasterKeyError

__all__ = [
    "ENV_VAR",
    "KEY_FILE",
    "NEW_KEY_FILE",
    "Keyring",
    "MasterKey",
    "load_keyring",
    "read_key_file",
    "write_key_file",
]

KEY_SIZE = 32
ENV_VAR = "VERTEX_MASTER_KEY"
KEY_FILE = "master.key"
# Present only while a rotation is in progress (or was interrupted).
NEW_KEY_FILE = "master.key.new"

_KEY_ID_DOMAIN = b"vertex_tools.vault.keyid.v1\x00"
_KEY_ID_BYTES = 8
# A key file holds one line of at most 64 hex characters; anything much bigger
# is not a key file, and reading it whole would be a waste.
_MAX_KEY_FILE_BYTES = 1024
_B64_KEY = re.compile(r"[A-Za-z0-9_-]{43}=?", re.ASCII)
_HEX_KEY = re.compile(r"[0-9A-Fa-f]{64}", re.ASCII)
_EXPECTED_FORMAT = (
    "expected 43 base64url characters (as written by `vertex init`) or 64 hex characters"
)
# One message for every authentication failure, like Fernet's InvalidToken.
INVALID_CIPHERTEXT_MESSAGE = (
    "vault entry failed authentication: it was tampered with, moved, "
    "or sealed with a master key that is not loaded"
)


def invalid_ciphertext() -> InvalidCiphertext:
    """Return the one opaque error for every decryption failure."""
    return InvalidCiphertext(INVALID_CIPHERTEXT_MESSAGE)


class MasterKey:
    """A 32-byte AES-256-GCM master key.

    The bytes never appear in ``repr`` or ``str``, only :attr:`key_id`. Keys compare
    in constant time and cannot be pickled.
    """

    __slots__ = ("_aead", "_key_id", "_raw")

    _raw: bytes
    _aead: AESGCM
    _key_id: str

    def __init__(self, raw: bytes) -> None:
        """Wrap ``raw``, which must be exactly 32 bytes, else :class:`MasterKeyError`."""
        if not isinstance(raw, bytes) or len(raw) != KEY_SIZE:
            raise MasterKeyError(f"a master key must be exactly {KEY_SIZE} bytes")
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "_aead", AESGCM(raw))
        digest = blake3.blake3(_KEY_ID_DOMAIN + raw).digest()
        object.__setattr__(self, "_key_id", digest[:_KEY_ID_BYTES].hex())

    @classmethod
    def generate(cls) -> MasterKey:
        """Return a new key made of 32 bytes from the operating system's CSPRNG."""
        return cls(os.urandom(KEY_SIZE))

    @property
    def key_id(self) -> str:
        """Public identifier: hex of the first 8 bytes of a domain-separated BLAKE3."""
        return self._key_id

    def encode(self) -> str:
        """Return the key as unpadded base64url (the ``VERTEX_MASTER_KEY`` format)."""
        return base64.urlsafe_b64encode(self._raw).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, text: str) -> MasterKey:
        """Parse base64url (padded or not) or 64 hex characters.

        Surrounding whitespace is ignored. Anything else raises
        :class:`MasterKeyError` describing the expected format; the message never
        contains the value.
        """
        if not isinstance(text, str):
            raise MasterKeyError(f"malformed master key: {_EXPECTED_FORMAT}")
        candidate = text.strip()
        if _HEX_KEY.fullmatch(candidate):
            return cls(bytes.fromhex(candidate))
        if _B64_KEY.fullmatch(candidate):
            unpadded = candidate.rstrip("=")
            try:
                raw = base64.urlsafe_b64decode(unpadded + "=")
            except (binascii.Error, ValueError) as exc:
                raise MasterKeyError(f"malformed master key: {_EXPECTED_FORMAT}") from exc
            key = cls(raw)
            # Reject non-canonical spellings (stray low bits in the last character)
            # so each key has exactly one base64url form.
            if hmac.compare_digest(key.encode(), unpadded):
                return key
        raise MasterKeyError(f"malformed master key: {_EXPECTED_FORMAT}")

    def __setattr__(self, name: str, value: object) -> NoReturn:
        """Refuse mutation: a key is a value."""
        raise AttributeError("MasterKey is immutable")

    def __eq__(self, other: object) -> bool:
        """Compare keys in constant time."""
        if not isinstance(other, MasterKey):
            return NotImplemented
        return hmac.compare_digest(self._raw, other._raw)

    def __hash__(self) -> int:
        """Hash by key_id, which is already a digest of the key."""
        return hash(self._key_id)

    def __repr__(self) -> str:
        """Show the key_id only."""
        return f"MasterKey(key_id={self._key_id!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        """Refuse pickling, which would write the key bytes wherever the pickle goes."""
        raise TypeError("MasterKey cannot be pickled")


@dataclass(frozen=True)
class Keyring:
    """The keys a vault can open entries with; ``primary`` seals new entries.

    ``others`` are kept for reading only: an interrupted rotation leaves entries
    sealed with either the old or the new key.
    """

    primary: MasterKey
    others: tuple[MasterKey, ...] = ()

    def get(self, key_id: str) -> MasterKey:
        """Return the key with ``key_id``, or raise the opaque :class:`InvalidCiphertext`."""
        for key in (self.primary, *self.others):
            if key.key_id == key_id:
                return key
        raise invalid_ciphertext()

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of every key, primary first."""
        return tuple(key.key_id for key in (self.primary, *self.others))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_key_file(path: Path, key: MasterKey) -> None:
    """Create ``path`` with mode 0600 holding ``key``, fsynced with its directory.

    Refuses (:class:`MasterKeyError`) to overwrite an existing file. A failed write
    removes the partial file.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError as exc:
        raise MasterKeyError(f"refusing to overwrite existing key file {path}") from exc
    except OSError as exc:
        raise MasterKeyError(f"cannot create key file {path}: {exc.strerror}") from exc
    try:
        try:
            data = (key.encode() + "\n").encode("ascii")
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(path.parent)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise MasterKeyError(f"cannot write key file {path}: {exc.strerror}") from exc


def read_key_file(path: Path) -> MasterKey:
    """Read the key in ``path``.

    Refuses (:class:`MasterKeyError`, naming the fix) a file that group or others can
    access, and anything that is not a regular file holding one key.
    """
    try:
        # O_NONBLOCK: a FIFO planted at the path must not hang the broker at start-up.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError as exc:
        raise MasterKeyError(f"no master key file at {path}") from exc
    except OSError as exc:
        raise MasterKeyError(f"cannot open key file {path}: {exc.strerror}") from exc
    try:
        # fstat the open descriptor, not the path, so the file checked is the file read.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise MasterKeyError(f"key file {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise MasterKeyError(
                f"key file {path} is accessible by group or others (mode {mode:04o}); "
                f"run `chmod 600 {path}`"
            )
        data = os.read(fd, _MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise MasterKeyError(f"cannot read key file {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    try:
        if len(data) > _MAX_KEY_FILE_BYTES:
            raise MasterKeyError(f"malformed master key: {_EXPECTED_FORMAT}")
        return MasterKey.decode(data.decode("ascii"))
    except (MasterKeyError, UnicodeDecodeError) as exc:
        raise MasterKeyError(f"key file {path}: malformed master key: {_EXPECTED_FORMAT}") from exc


def load_keyring(home: Path, environ: Mapping[str, str] = os.environ) -> Keyring:
    """Load the master key(s) for the data directory ``home``.

    1. ``VERTEX_MASTER_KEY``, if set and non-empty, is the only key.
    2. Otherwise ``home/master.key`` is the primary key, and ``home/master.key.new``,
       left by an interrupted rotation, is loaded too so every entry stays readable.
    3. Nothing found: :class:`MasterKeyError` naming both ways to fix it.
    """
    env_value = environ.get(ENV_VAR, "")
    if env_value:
        try:
            return Keyring(MasterKey.decode(env_value))
        except MasterKeyError as exc:
            raise MasterKeyError(f"{ENV_VAR} is malformed: {_EXPECTED_FORMAT}") from exc
    # Read the new file first: if a rotation finishes between the two reads, the
    # new key is then also the one found in master.key, and no key is missed.
    new_key = _read_if_present(home / NEW_KEY_FILE)
    key = _read_if_present(home / KEY_FILE)
    if key is None:
        if new_key is None:
            raise MasterKeyError(f"no master key: run `vertex init` or set {ENV_VAR}")
        return Keyring(new_key)
    if new_key is None or new_key == key:
        return Keyring(key)
    return Keyring(key, (new_key,))


def _read_if_present(path: Path) -> MasterKey | None:
    try:
        return read_key_file(path)
    except MasterKeyError as exc:
        if isinstance(exc.__cause__, FileNotFoundError):
            return None
        raise
