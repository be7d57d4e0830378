"""The secret vault: provider secrets sealed with AES-256-GCM.

Each entry is sealed with the primary master key under a fresh 12-byte nonce,
with associated data ``b"vertex_tools.vault.v1\\x00"`` followed by the
length-prefixed (4-byte big-endian) UTF-8 name and provider, so a ciphertext
moved to another name or provider fails to open. Every failure to open an entry
raises the same opaque :class:`~vertex_tools.errors.InvalidCiphertext`.

The master key comes from ``VERTEX_MASTER_KEY`` or a 0600 key file
(:func:`load_keyring`); :func:`rotate_key_file` replaces the key file and
re-encrypts every entry, safely across crashes. Plaintext never reaches disk,
logs, errors or reprs: a decrypted secret is a :class:`SecretValue`.
"""

from vertex_tools.vault._keys import (
    ENV_VAR,
    KEY_FILE,
    NEW_KEY_FILE,
    Keyring,
    MasterKey,
    load_keyring,
    read_key_file,
    write_key_file,
)
from vertex_tools.vault._rotate import rotate_key_file
from vertex_tools.vault._secret import SecretValue, VaultEntryInfo
from vertex_tools.vault._vault import MAX_SECRET_BYTES, NAME_PATTERN, PROVIDER_PATTERN, Vault

__all__ = [
    "ENV_VAR",
    "KEY_FILE",
    "MAX_SECRET_BYTES",
    "NAME_PATTERN",
    "NEW_KEY_FILE",
    "PROVIDER_PATTERN",
    "Keyring",
    "MasterKey",
    "SecretValue",
    "Vault",
    "VaultEntryInfo",
    "load_keyring",
    "read_key_file",
    "rotate_key_file",
    "write_key_file",
]
