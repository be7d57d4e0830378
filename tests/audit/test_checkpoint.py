"""Checkpoint keys, files and signatures, with real Ed25519 keys."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.audit.conftest import FakeClock, fill
from vertex_tools.audit import (
    AuditLog,
    Checkpoint,
    CheckpointKey,
    make_checkpoint,
    read_checkpoint,
    verify_checkpoint_signature,
    write_checkpoint,
)
from vertex_tools.errors import CheckpointError


@pytest.fixture
def key_paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "checkpoint.key", tmp_path / "checkpoint.pub"


@pytest.fixture
def key(key_paths: tuple[Path, Path]) -> CheckpointKey:
    return CheckpointKey.generate(*key_paths)


@pytest.fixture
def checkpoint(log: AuditLog, key: CheckpointKey, clock: FakeClock) -> Checkpoint:
    fill(log, 3)
    return make_checkpoint(log, key, clock=clock)


@pytest.fixture
def zero_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- keys -------------------------------------------------------------------------


@pytest.mark.usefixtures("zero_umask")
def test_generate_writes_a_0600_private_key_even_with_umask_0(
    key_paths: tuple[Path, Path],
) -> None:
    private_path, public_path = key_paths
    key = CheckpointKey.generate(private_path, public_path)
    assert mode(private_path) == 0o600
    assert mode(public_path) == 0o644
    assert CheckpointKey.load_private(private_path).key_id == key.key_id
    loaded_public = CheckpointKey.load_public(public_path)
    raw = loaded_public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key.key_id == blake3.blake3(raw).digest()[:8].hex()
    assert len(key.key_id) == 16


def test_generate_refuses_to_overwrite(key_paths: tuple[Path, Path], key: CheckpointKey) -> None:
    private_path, public_path = key_paths
    before = private_path.read_bytes()
    with pytest.raises(CheckpointError, match="already exists"):
        CheckpointKey.generate(private_path, public_path)
    assert private_path.read_bytes() == before


def test_generate_leaves_no_orphan_private_key(tmp_path: Path) -> None:
    public_path = tmp_path / "taken.pub"
    public_path.write_text("someone else's file")
    with pytest.raises(CheckpointError, match="already exists"):
        CheckpointKey.generate(tmp_path / "new.key", public_path)
    assert not (tmp_path / "new.key").exists()


def test_repr_shows_only_the_key_id(key_paths: tuple[Path, Path], key: CheckpointKey) -> None:
    private_pem = key_paths[0].read_text()
    loaded = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(loaded, Ed25519PrivateKey)
    raw = loaded.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    shown = repr(key) + str(key)
    assert shown == f"CheckpointKey(key_id='{key.key_id}')" * 2
    assert raw.hex() not in shown
    assert base64.b64encode(raw).decode() not in shown


def test_load_private_refuses_a_readable_key(
    key_paths: tuple[Path, Path], key: CheckpointKey
) -> None:
    key_paths[0].chmod(0o640)
    with pytest.raises(CheckpointError, match="mode 0640"):
        CheckpointKey.load_private(key_paths[0])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a key", "not a PEM"),
        (
            Ed25519PrivateKey.generate()
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "not a PEM private key",
        ),
    ],
)
def test_load_private_refuses_other_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "k"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(CheckpointError, match=message):
        CheckpointKey.load_private(path)


def test_load_public_refuses_other_files(tmp_path: Path, key_paths: tuple[Path, Path]) -> None:
    with pytest.raises(CheckpointError, match="cannot read public key"):
        CheckpointKey.load_public(tmp_path / "missing.pub")
    (tmp_path / "junk.pub").write_text("junk")
    with pytest.raises(CheckpointError, match="not a PEM public key"):
        CheckpointKey.load_public(tmp_path / "junk.pub")


# -- signatures -------------------------------------------------------------------


def test_checkpoint_signs_the_head(
    log: AuditLog, key: CheckpointKey, checkpoint: Checkpoint
) -> None:
    assert (checkpoint.seq, checkpoint.head_hash) == log.head()
    assert checkpoint.log_id == log.log_id()
    assert checkpoint.key_id == key.key_id
    assert checkpoint.signed_bytes().startswith(b"vertex_tools.audit.checkpoint.v1\x00{")
    verify_checkpoint_signature(checkpoint, key.public_key)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seq": 4}, "signature is invalid"),
        ({"head_hash": b"\x00" * 32}, "signature is invalid"),
        ({"time_us": 1}, "signature is invalid"),
        ({"log_id": b"\x00" * 16}, "signature is invalid"),
        ({"signature": b"\x00" * 64}, "signature is invalid"),
        ({"key_id": "00" * 8}, "signed by key 0000000000000000"),
    ],
)
def test_edited_fields_fail_the_signature(
    checkpoint: Checkpoint, key: CheckpointKey, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(CheckpointError, match=message):
        verify_checkpoint_signature(dataclasses.replace(checkpoint, **changes), key.public_key)


def test_another_key_fails_naming_both_keys(checkpoint: Checkpoint, key: CheckpointKey) -> None:
    other = Ed25519PrivateKey.generate()
    with pytest.raises(CheckpointError) as caught:
        verify_checkpoint_signature(checkpoint, other.public_key())
    assert key.key_id in str(caught.value)
    assert CheckpointKey(other).key_id in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"log_id": b"short"}, "log_id"),
        ({"head_hash": b"short"}, "head_hash"),
        ({"signature": b"short"}, "signature"),
        ({"seq": -1}, "seq"),
        ({"seq": True}, "seq"),
        ({"time_us": 1.5}, "time_us"),
        ({"key_id": "ABCDEF0123456789"}, "key_id"),
    ],
)
def test_malformed_checkpoint_values_are_refused(
    checkpoint: Checkpoint, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(CheckpointError, match=message):
        dataclasses.replace(checkpoint, **changes)


# -- files ------------------------------------------------------------------------


def test_file_round_trip(checkpoint: Checkpoint, key: CheckpointKey, tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    write_checkpoint(checkpoint, path)
    document = json.loads(path.read_text())
    assert document == {
        "format": "vertex_tools.checkpoint.v1",
        "log_id": checkpoint.log_id.hex(),
        "seq": 3,
        "head_hash": checkpoint.head_hash.hex(),
        "time_us": checkpoint.time_us,
        "key_id": key.key_id,
        "signature": base64.b64encode(checkpoint.signature).decode(),
    }
    assert read_checkpoint(path) == checkpoint
    write_checkpoint(checkpoint, path)  # replaces atomically
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _edit(document: dict[str, Any], name: str, value: Any) -> None:
    if value is _DELETE:
        del document[name]
    else:
        document[name] = value


_DELETE = object()

FILE_CASES: dict[str, tuple[str, Any, str]] = {
    "unknown-format": ("format", "vertex_tools.checkpoint.v2", "unknown format"),
    "no-format": ("format", _DELETE, "missing field 'format'"),
    "no-seq": ("seq", _DELETE, "missing field(s) 'seq'"),
    "no-signature": ("signature", _DELETE, "missing field(s) 'signature'"),
    "extra-field": ("comment", "hello", "unexpected field(s) 'comment'"),
    "log-id-upper-hex": ("log_id", "AB" * 16, "'log_id' must be 32 lowercase hex"),
    "log-id-short": ("log_id", "ab", "'log_id' must be 32 lowercase hex"),
    "log-id-not-hex": ("log_id", "zz" * 16, "'log_id' must be 32 lowercase hex"),
    "head-hash-spaces": ("head_hash", "ab " * 21 + "a", "'head_hash' must be 64 lowercase hex"),
    "head-hash-number": ("head_hash", 5, "'head_hash' must be 64 lowercase hex"),
    "signature-not-base64": ("signature", "!!!!", "'signature' is not valid base64"),
    "signature-short": ("signature", base64.b64encode(b"x" * 10).decode(), "64 bytes"),
    "signature-number": ("signature", 5, "'signature' must be a base64 string"),
    "seq-string": ("seq", "3", "'seq' must be an integer"),
    "seq-bool": ("seq", True, "'seq' must be an integer"),
    "seq-float": ("seq", 3.0, "'seq' must be an integer"),
    "seq-negative": ("seq", -1, "seq must be an int >= 0"),
    "time-null": ("time_us", None, "'time_us' must be an integer"),
    "key-id-short": ("key_id", "abcd", "key_id must be 16 lowercase hex"),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_malformed_files_are_refused_naming_the_problem(
    checkpoint: Checkpoint, tmp_path: Path, case: str
) -> None:
    name, value, message = FILE_CASES[case]
    path = tmp_path / "checkpoint.json"
    write_checkpoint(checkpoint, path)
    document = json.loads(path.read_text())
    _edit(document, name, value)
    path.write_text(json.dumps(document))
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"format": "vertex_tools.checkpoint.v1", "format": "x"}', "'format' appears twice"),
    ],
)
def test_unparsable_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "checkpoint.json"
    path.write_text(text)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_checkpoint(tmp_path / "missing.json")


def test_a_file_with_an_edited_seq_reads_but_fails_the_signature(
    checkpoint: Checkpoint, key: CheckpointKey, tmp_path: Path
) -> None:
    path = tmp_path / "checkpoint.json"
    write_checkpoint(checkpoint, path)
    document = json.loads(path.read_text())
    document["seq"] = 2
    path.write_text(json.dumps(document))
    edited = read_checkpoint(path)
    with pytest.raises(CheckpointError, match="signature is invalid"):
        verify_checkpoint_signature(edited, key.public_key)
