"""The append-only, BLAKE3 hash-chained, tamper-evident audit log.

The encoding and chain invariants are stated in ``_entry``; storage and
locking in ``_log``; checkpoint format and signing in ``_checkpoint``; the
order of verification checks in ``_verify``.

    with AuditLog(home / "audit.db") as log:
        log.append(EntryKind.INTENT, {"op": "stripe.charges.create", "decision": "allow"})
        report = verify_log(log)
"""

from vertex_tools.audit._checkpoint import (
    Checkpoint,
    CheckpointKey,
    make_checkpoint,
    read_checkpoint,
    verify_checkpoint_signature,
    write_checkpoint,
)
from vertex_tools.audit._entry import GENESIS_HASH, AuditRecord, EntryKind
from vertex_tools.audit._log import AuditLog
from vertex_tools.audit._verify import VerifyReport, verify_log
from vertex_tools.audit._writer import AsyncAuditWriter

__all__ = [
    "GENESIS_HASH",
    "AsyncAuditWriter",
    "AuditLog",
    "AuditRecord",
    "Checkpoint",
    "CheckpointKey",
    "EntryKind",
    "VerifyReport",
    "make_checkpoint",
    "read_checkpoint",
    "verify_checkpoint_signature",
    "verify_log",
    "write_checkpoint",
]
