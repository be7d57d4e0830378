"""Verification of the whole log, optionally against a signed checkpoint.

Order of checks (the first failure is raised; nothing after it runs):

1. Checkpoint, before reading any entry: a public key is required, the key id
   and signature must match (``CheckpointError``), and the checkpoint must be
   for this log's ``log_id`` (``CheckpointError``).
2. Every row in seq order, inside one read transaction so that appends made
   meanwhile are not half-seen. For each row, in this order:
   a. ``sequence``: the row's seq is the next expected one (a gap is a deleted row);
   b. ``encoding``: the entry bytes are canonical, version 1, and name this seq;
   c. ``prev_hash``: the stored prev_hash is the hash calculated for the row before;
   d. ``hash``: the stored hash is BLAKE3 of the domain, prev_hash and entry.
3. Checkpoint against the walked chain: the log still reaches ``seq``
   (else it was truncated) and the hash calculated at ``seq`` is the signed
   ``head_hash`` (else it was rewritten); both are ``what="checkpoint"``.

In every ``AuditIntegrityError``, ``expected`` is the value recorded (in the
row or the checkpoint) and ``calculated`` the value computed from the chain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from blake3 import blake3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from vertex_tools.audit._backend import AuditBackend
from vertex_tools.audit._checkpoint import Checkpoint, verify_checkpoint_signature
from vertex_tools.audit._entry import ENTRY_DOMAIN, GENESIS_HASH
from vertex_tools.audit._fastcheck import entry_checker
from vertex_tools.errors import AuditIntegrityError, CheckpointError

__all__ = ["PROGRESS_EVERY", "VerifyReport", "verify_log"]

# Rows fetched per batch; progress is reported once per batch. Large enough
# that fetching costs little per row, small enough to bound memory.
PROGRESS_EVERY = 10_000


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What a successful verification covered."""

    entries: int
    head_seq: int
    head_hash: bytes
    checkpoint_seq: int | None


def _hex(value: object) -> str:
    return value.hex() if isinstance(value, bytes) else repr(value)


def verify_log(
    log: AuditBackend,
    *,
    checkpoint: Checkpoint | None = None,
    public_key: Ed25519PublicKey | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Verify every entry of ``log``; return a report or raise at the first bad entry.

    Raises ``AuditIntegrityError`` (seq, what, detail, expected, calculated) for
    a broken chain, ``CheckpointError`` for a checkpoint that is unsigned,
    badly signed or for another log, and ``AuditUnavailable`` if the file
    cannot be read (a database error, from the backend). ``progress(done, total)`` is called every
    ``PROGRESS_EVERY`` rows and once at the end.
    """
    # 1. The checkpoint itself.
    if checkpoint is not None:
        if public_key is None:
            raise CheckpointError(
                "a checkpoint can only be trusted with the public key that signed it"
            )
        verify_checkpoint_signature(checkpoint, public_key)
        if checkpoint.log_id != log.log_id():
            raise CheckpointError(
                f"checkpoint is for audit log {checkpoint.log_id.hex()},"
                f" but {log.location} is log {log.log_id().hex()}"
            )
    checkpoint_seq = checkpoint.seq if checkpoint is not None else -1
    hash_at_checkpoint = GENESIS_HASH if checkpoint_seq == 0 else None

    # 2. The chain. Plain tuples from a plain cursor: this loop is the cost.
    expected_seq = 1
    running = GENESIS_HASH
    # Locals, looked up once, not per row. The checker gives decode_entry's verdicts,
    # faster; the hash is chain_hash() written out (a call per row is measurable here).
    check, domain = entry_checker(), ENTRY_DOMAIN
    with log._scan(PROGRESS_EVERY) as (total, batches):
        for rows in batches:
            for seq, prev_hash, stored_hash, entry in rows:
                if seq > expected_seq:
                    raise AuditIntegrityError(
                        expected_seq,
                        "sequence",
                        f"entry {expected_seq} is missing (the next row is seq {seq})",
                    )
                if seq < expected_seq:  # only a row with seq < 1 can sort first
                    raise AuditIntegrityError(
                        seq,
                        "sequence",
                        f"row seq {seq} is not a valid position (seqs start at 1)",
                    )
                check(seq, entry)
                if prev_hash != running:
                    raise AuditIntegrityError(
                        seq,
                        "prev_hash",
                        "prev_hash is not the genesis hash"
                        if seq == 1
                        else f"prev_hash does not match the hash of entry {seq - 1}",
                        expected=_hex(prev_hash),
                        calculated=running.hex(),
                    )
                calculated = blake3(domain + running + entry).digest()
                if calculated != stored_hash:
                    raise AuditIntegrityError(
                        seq,
                        "hash",
                        "stored hash does not match the entry (the entry or hash was changed)",
                        expected=_hex(stored_hash),
                        calculated=calculated.hex(),
                    )
                running = calculated
                if seq == checkpoint_seq:
                    hash_at_checkpoint = calculated
                expected_seq += 1
            if progress is not None:
                progress(expected_seq - 1, total)
    head_seq = expected_seq - 1
    if progress is not None and head_seq == 0:
        progress(0, total)  # an empty log still reports that it finished

    # 3. The chain against the checkpoint.
    if checkpoint is not None:
        if hash_at_checkpoint is None:
            raise AuditIntegrityError(
                checkpoint.seq,
                "checkpoint",
                f"the log has {head_seq} entries but the checkpoint covers {checkpoint.seq}:"
                " entries were removed from the end (truncated)",
                expected=checkpoint.head_hash.hex(),
            )
        if hash_at_checkpoint != checkpoint.head_hash:
            raise AuditIntegrityError(
                checkpoint.seq,
                "checkpoint",
                f"entry {checkpoint.seq} differs from the one signed in the checkpoint:"
                " the log was rewritten before the checkpoint",
                expected=checkpoint.head_hash.hex(),
                calculated=hash_at_checkpoint.hex(),
            )
    return VerifyReport(
        entries=head_seq,
        head_seq=head_seq,
        head_hash=running,
        checkpoint_seq=checkpoint.seq if checkpoint is not None else None,
    )
