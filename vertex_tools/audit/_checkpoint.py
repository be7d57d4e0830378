"""Signed checkpoints: an Ed25519 signature over (log_id, seq, head_hash, time).

A bare hash chain proves only that the entries agree with each other: whoever
can write the file can truncate it, or rewrite it and recompute every hash. A
checkpoint exported off the host pins the head at a moment; verify_log then
proves the log still has that entry and that nothing before it changed.

Invariants:

1. Signed bytes are ``b"vertex_tools.audit.checkpoint.v1\\x00"`` followed by
   the canonical JSON (as for entries) of every field but the signature, bytes
   in lowercase hex: ``{"head_hash", "key_id", "log_id", "seq", "time_us"}``.
2. ``key_id`` is the hex of the first 8 bytes of BLAKE3(raw public key); a
   checkpoint whose key_id is not the given key's is refused before the
   signature is even checked, with a message naming both.
3. The file is JSON with ``"format": "vertex_tools.checkpoint.v1"``; any other
   format, a missing or extra field, a duplicated key, or a malformed value is
   a CheckpointError naming it. Nothing is defaulted.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vertex_tools.audit._backend import AuditBackend
from vertex_tools.audit._entry import HASH_SIZE, canonical_json
from vertex_tools.audit._log import LOG_ID_SIZE
from vertex_tools.errors import CheckpointError

__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "CheckpointKey",
    "make_checkpoint",
    "read_checkpoint",
    "verify_checkpoint_signature",
    "write_checkpoint",
]

CHECKPOINT_FORMAT = "vertex_tools.checkpoint.v1"
CHECKPOINT_DOMAIN = b"vertex_tools.audit.checkpoint.v1\x00"
SIGNATURE_SIZE = 64
KEY_ID_SIZE = 8

_FIELDS = ("format", "log_id", "seq", "head_hash", "time_us", "key_id", "signature")
_HEX = re.compile(r"[0-9a-f]*")
_KEY_ID = re.compile(f"[0-9a-f]{{{2 * KEY_ID_SIZE}}}")


def _key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return blake3.blake3(raw).digest()[:KEY_ID_SIZE].hex()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement that log ``log_id`` had ``seq`` entries ending in ``head_hash``."""

    log_id: bytes
    seq: int
    head_hash: bytes
    time_us: int
    key_id: str
    signature: bytes

    def __post_init__(self) -> None:
        """Refuse values no signer would produce, so a Checkpoint is always well formed."""
        if type(self.log_id) is not bytes or len(self.log_id) != LOG_ID_SIZE:
            raise CheckpointError(f"checkpoint log_id must be {LOG_ID_SIZE} bytes")
        if type(self.seq) is not int or self.seq < 0:
            raise CheckpointError(f"checkpoint seq must be an int >= 0, not {self.seq!r}")
        if type(self.head_hash) is not bytes or len(self.head_hash) != HASH_SIZE:
            raise CheckpointError(f"checkpoint head_hash must be {HASH_SIZE} bytes")
        if type(self.time_us) is not int:
            raise CheckpointError(f"checkpoint time_us must be an int, not {self.time_us!r}")
        if type(self.key_id) is not str or not _KEY_ID.fullmatch(self.key_id):
            raise CheckpointError(
                f"checkpoint key_id must be {2 * KEY_ID_SIZE} lowercase hex digits,"
                f" not {self.key_id!r}"
            )
        if type(self.signature) is not bytes or len(self.signature) != SIGNATURE_SIZE:
            raise CheckpointError(f"checkpoint signature must be {SIGNATURE_SIZE} bytes")

    def signed_bytes(self) -> bytes:
        """The exact bytes the signature covers (invariant 1)."""
        return CHECKPOINT_DOMAIN + _signed_fields(
            self.log_id, self.seq, self.head_hash, self.time_us, self.key_id
        )


def _signed_fields(log_id: bytes, seq: int, head_hash: bytes, time_us: int, key_id: str) -> bytes:
    fields = {
        "head_hash": head_hash.hex(),
        "key_id": key_id,
        "log_id": log_id.hex(),
        "seq": seq,
        "time_us": time_us,
    }
    return canonical_json(fields).encode()


class CheckpointKey:
    """The Ed25519 key that signs checkpoints. Its repr shows only the key id."""

    __slots__ = ("_key_id", "_private")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        """Wrap an Ed25519 private key; prefer ``generate`` or ``load_private``."""
        if not isinstance(private_key, Ed25519PrivateKey):
            raise CheckpointError("a checkpoint key must be an Ed25519 private key")
        self._private = private_key
        self._key_id = _key_id(private_key.public_key())

    @classmethod
    def generate(cls, private_path: Path, public_path: Path) -> CheckpointKey:
        """Make a new key; write the private key (PKCS#8 PEM, mode 0600) and the public key.

        Refuses to overwrite either file. The private file is created with
        ``O_CREAT | O_EXCL`` and mode 0600 in one call, so it is never readable
        by anyone else, not even for a moment.
        """
        key = Ed25519PrivateKey.generate()
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        private_path, public_path = Path(private_path), Path(public_path)
        _write_new(private_path, private_pem, 0o600)
        try:
            _write_new(public_path, public_pem, 0o644)
        except CheckpointError:
            # Without its public half the private key is useless; leave no orphan.
            private_path.unlink()
            raise
        return cls(key)

    @classmethod
    def load_private(cls, path: Path) -> CheckpointKey:
        """Load a private key written by ``generate``.

        Refuses a file that group or others may read or write, as ssh does.
        """
        path = Path(path)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            pem = path.read_bytes()
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint key {path}: {exc.strerror}") from exc
        if mode & 0o077:
            raise CheckpointError(
                f"checkpoint key {path} has mode {mode:04o}; it must not be accessible"
                " to group or others (chmod 600)"
            )
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            # The library's message never includes key material.
            raise CheckpointError(f"{path} is not a PEM private key: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise CheckpointError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
        return cls(key)

    @staticmethod
    def load_public(path: Path) -> Ed25519PublicKey:
        """Load a public key written by ``generate`` (PEM SubjectPublicKeyInfo)."""
        path = Path(path)
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise CheckpointError(f"cannot read public key {path}: {exc.strerror}") from exc
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise CheckpointError(f"{path} is not a PEM public key: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise CheckpointError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
        return key

    @property
    def key_id(self) -> str:
        """Hex of the first 8 bytes of BLAKE3 of the raw public key."""
        return self._key_id

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The public half, for verification."""
        return self._private.public_key()

    def _sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def __repr__(self) -> str:
        return f"CheckpointKey(key_id={self._key_id!r})"


def _write_new(path: Path, content: bytes, mode: int) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError as exc:
        raise CheckpointError(f"{path} already exists; refusing to overwrite a key") from exc
    except OSError as exc:
        raise CheckpointError(f"cannot create {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise CheckpointError(f"cannot write {path}: {exc.strerror}") from exc


def make_checkpoint(
    log: AuditBackend, key: CheckpointKey, *, clock: Callable[[], float] = time.time
) -> Checkpoint:
    """Sign the log's current head.

    This signs what is there: run ``verify_log`` first (against the previous
    checkpoint) so that a checkpoint never vouches for an already broken log.
    """
    seq, head_hash = log.head()
    log_id = log.log_id()
    time_us = round(clock() * 1_000_000)
    signed = CHECKPOINT_DOMAIN + _signed_fields(log_id, seq, head_hash, time_us, key.key_id)
    return Checkpoint(
        log_id=log_id,
        seq=seq,
        head_hash=head_hash,
        time_us=time_us,
        key_id=key.key_id,
        signature=key._sign(signed),
    )


def verify_checkpoint_signature(cp: Checkpoint, public_key: Ed25519PublicKey) -> None:
    """Return ``None`` if ``public_key`` signed ``cp``; raise ``CheckpointError`` otherwise."""
    expected_key_id = _key_id(public_key)
    if cp.key_id != expected_key_id:
        raise CheckpointError(
            f"checkpoint was signed by key {cp.key_id}, not by the given key {expected_key_id}"
        )
    try:
        public_key.verify(cp.signature, cp.signed_bytes())
    except InvalidSignature as exc:
        raise CheckpointError(
            f"checkpoint signature is invalid for key {expected_key_id}:"
            " a field was changed after signing"
        ) from exc


def write_checkpoint(cp: Checkpoint, path: Path) -> None:
    """Write ``cp`` as JSON, atomically (a temporary file renamed over ``path``)."""
    path = Path(path)
    document = {
        "format": CHECKPOINT_FORMAT,
        "log_id": cp.log_id.hex(),
        "seq": cp.seq,
        "head_hash": cp.head_hash.hex(),
        "time_us": cp.time_us,
        "key_id": cp.key_id,
        "signature": base64.b64encode(cp.signature).decode("ascii"),
    }
    content = (json.dumps(document, indent=2) + "\n").encode()
    try:
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        # A checkpoint is public (it is meant to be copied off the host).
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except OSError as exc:
        Path(temp_name).unlink(missing_ok=True)
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror}") from exc


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise CheckpointError(f"field {key!r} appears twice")
        result[key] = value
    return result


def _hex_field(document: dict[str, Any], name: str, size: int) -> bytes:
    value = document[name]
    if type(value) is not str or len(value) != 2 * size or not _HEX.fullmatch(value):
        raise CheckpointError(f"field {name!r} must be {2 * size} lowercase hex digits")
    return bytes.fromhex(value)


def _int_field(document: dict[str, Any], name: str) -> int:
    value = document[name]
    if type(value) is not int:
        raise CheckpointError(f"field {name!r} must be an integer, not {value!r}")
    return value


def _parse(document: object) -> Checkpoint:
    if type(document) is not dict:
        raise CheckpointError("not a JSON object")
    if "format" not in document:
        raise CheckpointError("missing field 'format'")
    if document["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"unknown format {document['format']!r} (expected {CHECKPOINT_FORMAT!r})"
        )
    missing = [name for name in _FIELDS if name not in document]
    if missing:
        raise CheckpointError(f"missing field(s) {', '.join(map(repr, missing))}")
    extra = sorted(set(document) - set(_FIELDS))
    if extra:
        raise CheckpointError(f"unexpected field(s) {', '.join(map(repr, extra))}")
    signature_text = document["signature"]
    if type(signature_text) is not str:
        raise CheckpointError("field 'signature' must be a base64 string")
    try:
        signature = base64.b64decode(signature_text, validate=True)
    except binascii.Error as exc:
        raise CheckpointError(f"field 'signature' is not valid base64: {exc}") from exc
    if len(signature) != SIGNATURE_SIZE:
        raise CheckpointError(f"field 'signature' must decode to {SIGNATURE_SIZE} bytes")
    return Checkpoint(
        log_id=_hex_field(document, "log_id", LOG_ID_SIZE),
        seq=_int_field(document, "seq"),
        head_hash=_hex_field(document, "head_hash", HASH_SIZE),
        time_us=_int_field(document, "time_us"),
        key_id=document["key_id"],
        signature=signature,
    )


def read_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint file; raise ``CheckpointError`` naming the file and what is wrong.

    Reading checks only the form. Call ``verify_checkpoint_signature`` (or
    ``verify_log`` with the public key) before trusting it.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from exc
    try:
        document = json.loads(raw, object_pairs_hook=_no_duplicate_keys)
        return _parse(document)
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from exc
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"checkpoint {path} is not valid JSON: {exc}") from exc
