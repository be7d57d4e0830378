"""Crash-safe rotation of the master key file.

The files on disk and the database are always in one of these states, and in
each of them :func:`load_keyring` loads a key for every entry:

====  =========================  ================  ===========================
step  master.key                 master.key.new    entries sealed with
====  =========================  ================  ===========================
0     old                        (absent)          old
1     old                        new               old
2     old                        new               new (one commit)
3     new                        (absent)          new (os.replace is atomic)
====  =========================  ================  ===========================

Running the rotation again after a crash resumes with the existing
``master.key.new`` instead of making another key, and completes it.
"""

from __future__ import annotations

import os
from pathlib import Path

from vertex_tools.errors import MasterKeyError
from vertex_tools.vault._keys import (
    KEY_FILE,
    NEW_KEY_FILE,
    Keyring,
    MasterKey,
    read_key_file,
    write_key_file,
)
from vertex_tools.vault._rows import VaultRows
from vertex_tools.vault._vault import Vault

__all__ = ["rotate_key_file"]


def rotate_key_file(home: Path, vault_db: Path | VaultRows) -> tuple[str, str, int]:
    """Replace ``home/master.key`` with a new key, re-encrypting every vault entry.

    ``vault_db`` is the SQLite file, or the rows of a shared database (closed here).

    Returns ``(old_key_id, new_key_id, count)``. Run it while no other process
    writes to the vault: a process still holding the old key could seal a new
    entry with it after the re-encryption commits.
    """
    key_path = home / KEY_FILE
    new_path = home / NEW_KEY_FILE
    # 1. The current key; rotation applies only to the key-file setup.
    old_key = read_key_file(key_path)
    # 2. The new key, durable (file and directory fsynced) before any entry uses it.
    #    A file left by an interrupted rotation may already seal some entries: reuse it.
    if new_path.exists():
        new_key = read_key_file(new_path)
    else:
        new_key = MasterKey.generate()
        write_key_file(new_path, new_key)
    # 3. Re-encrypt every entry in one transaction (synchronous=FULL). Entries may be
    #    sealed with either key if an earlier attempt got past this step.
    with Vault(vault_db, Keyring(old_key, (new_key,))) as vault:
        count = vault.reencrypt_all(new_key)
    # 4. Atomically make the new key the only one, and make the rename durable.
    try:
        os.replace(new_path, key_path)
        fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise MasterKeyError(
            f"entries were re-encrypted, but {new_path} could not replace {key_path} "
            f"({exc.strerror}); both keys are still loaded: rerun the rotation"
        ) from exc
    return old_key.key_id, new_key.key_id, count
