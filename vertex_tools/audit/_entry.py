"""Audit entry encoding and the hash chain.

Invariants. Everything else in :mod:`vertex_tools.audit` relies on these, and
:func:`decode_entry` checks every one of them on every read:

1. An entry's bytes are the canonical JSON of
   ``{"v": 1, "seq": seq, "time": time_us, "kind": kind, "data": data}``:
   keys sorted, separators ``(",", ":")``, ``ensure_ascii=False``, UTF-8.
   Canonical means exactly one byte string per record, so two different byte
   strings can never show the same record: ``encode(decode(b)) == b``.
2. ``data`` holds only str, int, bool, None, list and dict with str keys.
   Floats are refused: their text form is not exact, so a float would make
   the canonical form depend on the encoder.
3. ``hash = BLAKE3(b"vertex_tools.audit.entry.v1\\x00" + prev_hash + entry)``.
   The first entry's ``prev_hash`` is :data:`GENESIS_HASH` (32 zero bytes);
   every other entry's ``prev_hash`` is the ``hash`` of the entry before it.
4. ``seq`` starts at 1 and has no gaps, and the ``seq`` inside the entry
   equals the row's ``seq``.
5. Everything shown about a record (time, kind, data) is decoded from the
   entry bytes, never from another column, so all of it is covered by the hash.
6. An unknown version ``v`` is an error, never a best guess.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NoReturn

from blake3 import blake3

from vertex_tools.errors import AuditIntegrityError

__all__ = [
    "ENTRY_DOMAIN",
    "ENTRY_VERSION",
    "GENESIS_HASH",
    "AuditRecord",
    "EntryKind",
    "canonical_json",
    "chain_hash",
    "check_time_us",
    "decode_entry",
    "encode_data",
    "entry_bytes",
    "format_time_us",
    "record_from_row",
]

ENTRY_VERSION = 1
ENTRY_DOMAIN = b"vertex_tools.audit.entry.v1\x00"
GENESIS_HASH = bytes(32)
HASH_SIZE = 32

# Nesting deeper than this is refused on append: real audit data is shallow, and
# the limit keeps a cyclic or hostile structure from recursing without end.
MAX_DEPTH = 32

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The range datetime can show, so that every stored time renders in to_json().
_MIN_TIME_US = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_MAX_TIME_US = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) // timedelta(
    microseconds=1
)


class EntryKind(StrEnum):
    """What an audit entry records."""

    INTENT = "intent"  # a decision, written before anything leaves the broker
    OUTCOME = "outcome"  # what the upstream answered, spend committed or released
    ADMIN = "admin"  # vault, token, policy and approval changes


_KINDS: dict[str, EntryKind] = {kind.value: kind for kind in EntryKind}
_ENTRY_KEYS = frozenset({"v", "seq", "time", "kind", "data"})


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One verified-format entry of the log, decoded from its stored bytes."""

    seq: int
    time_us: int
    kind: EntryKind
    data: Mapping[str, Any]
    prev_hash: bytes
    hash: bytes

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict: times in ISO-8601 UTC, hashes in hex."""
        return {
            "seq": self.seq,
            "time": format_time_us(self.time_us),
            "kind": self.kind.value,
            "data": dict(self.data),
            "hash": self.hash.hex(),
            "prev_hash": self.prev_hash.hex(),
        }


def format_time_us(time_us: int) -> str:
    """Render microseconds since the epoch as ISO-8601 UTC, exactly (no float)."""
    moment = _EPOCH + timedelta(microseconds=time_us)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _refuse(value: object) -> NoReturn:
    raise TypeError(f"{type(value).__name__} is not allowed in audit data")


_ENCODER = json.JSONEncoder(
    sort_keys=True,
    separators=(",", ":"),
    ensure_ascii=False,
    allow_nan=False,
    default=_refuse,
)


def canonical_json(value: object) -> str:
    """Encode ``value`` as canonical JSON text (invariant 1)."""
    return _ENCODER.encode(value)


def _make_fast_canonical() -> Callable[[object], str]:
    """Build the canonical encoder used when re-encoding entries during verification.

    ``JSONEncoder.encode`` rebuilds the C encoder on every call, about 1.5 us of
    the 8 us verify_log spends per entry. Building it once gives the same
    encoder with the same arguments; it is used only if it agrees with the
    stdlib path on a probe, so a future Python that changes the private
    signature falls back to the slower path instead of changing the encoding.
    Cycle checking is off: values decoded from JSON cannot be cyclic.
    """
    make: Any = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return canonical_json
    try:
        iterencode = make(
            None, _refuse, json.encoder.encode_basestring, None, ":", ",", True, False, False
        )

        def fast(value: object) -> str:
            return "".join(iterencode(value, 0))

        probe = {"z": [1, True, None, 'é\n"\\\x1f\u2028'], "a": {"b": -5, "A": ""}}
        if fast(probe) != canonical_json(probe):
            return canonical_json
    except TypeError:
        return canonical_json
    return fast


_fast_canonical = _make_fast_canonical()


def _reject_number(text: str) -> NoReturn:
    # Floats and NaN/Infinity are never written (invariant 2), so reading one
    # means the bytes did not come from this encoder.
    raise ValueError(f"number {text!r} is not allowed in an audit entry")


_DECODER = json.JSONDecoder(parse_float=_reject_number, parse_constant=_reject_number)


def _check_value(value: object, where: str, depth: int) -> None:
    if value is None or isinstance(value, (str, int)):
        return  # bool is an int
    if depth >= MAX_DEPTH:
        raise ValueError(f"audit data {where} is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, float):
        raise TypeError(
            f"audit data {where} is a float ({value!r}); floats are not allowed because"
            " their encoding is not exact: use an int (e.g. minor units) or a string"
        )
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_value(item, f"{where}[{index}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"audit data {where} has a non-string key {key!r}")
            _check_value(item, f"{where}[{key!r}]", depth + 1)
        return
    raise TypeError(
        f"audit data {where} is a {type(value).__name__}; only str, int, bool, None,"
        " list and dict are allowed"
    )


def encode_data(data: Mapping[str, Any]) -> str:
    """Check ``data`` against invariant 2 and return its canonical JSON text.

    Raises ``TypeError`` naming the key of a float or other unsupported value,
    and ``ValueError`` for text that is not valid Unicode or nesting too deep.
    Called before any transaction starts, so bad data never costs a lock.
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"audit data must be a mapping, not {type(data).__name__}")
    plain = dict(data)
    _check_value(plain, "data", 0)
    try:
        # The encoder built once (same output, checked on a probe at import); the
        # check above already refused cycles, by depth.
        text = _fast_canonical(plain)
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"audit data holds text that is not valid Unicode: {exc}") from exc
    except ValueError as exc:  # an int too long to convert to text
        raise ValueError(f"audit data cannot be encoded: {exc}") from exc
    return text


def entry_bytes(seq: int, time_us: int, kind: EntryKind, data_text: str) -> bytes:
    """Return the entry bytes for ``data_text`` (already canonical, from encode_data).

    The envelope is written out by hand in sorted key order (data, kind, seq,
    time, v) so the data is encoded once, before the transaction; the tests
    check that this equals ``canonical_json`` of the whole entry.
    """
    return (
        f'{{"data":{data_text},"kind":"{kind.value}","seq":{seq},'
        f'"time":{time_us},"v":{ENTRY_VERSION}}}'
    ).encode()


def chain_hash(prev_hash: bytes, entry: bytes) -> bytes:
    """Return ``BLAKE3(ENTRY_DOMAIN + prev_hash + entry)`` (invariant 3)."""
    return blake3(ENTRY_DOMAIN + prev_hash + entry).digest()


def check_time_us(time_us: int) -> bool:
    """Whether ``time_us`` is an int that ``format_time_us`` can render."""
    return type(time_us) is int and _MIN_TIME_US <= time_us <= _MAX_TIME_US


def _broken(seq: int, detail: str) -> AuditIntegrityError:
    return AuditIntegrityError(seq, "encoding", detail)


def decode_entry(seq: int, entry: object) -> tuple[int, EntryKind, dict[str, Any]]:
    """Decode the entry stored at ``seq`` into ``(time_us, kind, data)``.

    Raises :class:`AuditIntegrityError` with ``what="encoding"`` for anything
    but the exact bytes :func:`entry_bytes` would write: not UTF-8, not JSON,
    trailing bytes, an unknown version, missing or extra keys, a seq that
    differs from the row's, and bytes that are valid but not canonical.
    """
    if type(entry) is not bytes:
        raise _broken(seq, f"entry is stored as {type(entry).__name__}, not a BLOB")
    try:
        text = entry.decode("utf-8")
        decoded, end = _DECODER.raw_decode(text)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise _broken(seq, f"entry is not UTF-8 JSON: {exc}") from exc
    if end != len(text):
        raise _broken(seq, f"entry has {len(text) - end} characters after the JSON value")
    if type(decoded) is not dict:
        raise _broken(seq, f"entry is a JSON {type(decoded).__name__}, not an object")
    version = decoded.get("v")
    if type(version) is not int or version != ENTRY_VERSION:
        raise _broken(seq, f"unknown entry version v={version!r} (this reader knows v=1)")
    if decoded.keys() != _ENTRY_KEYS:
        raise _broken(seq, f"entry has keys {sorted(decoded)}, expected {sorted(_ENTRY_KEYS)}")
    entry_seq = decoded["seq"]
    if type(entry_seq) is not int or entry_seq != seq:
        raise _broken(seq, f"entry says seq {entry_seq!r} but is stored at seq {seq}")
    time_us = decoded["time"]
    # check_time_us() written out: this function is most of verify_log's time.
    if type(time_us) is not int or not _MIN_TIME_US <= time_us <= _MAX_TIME_US:
        raise _broken(seq, f"entry time {time_us!r} is not a valid microsecond timestamp")
    raw_kind = decoded["kind"]
    kind = _KINDS.get(raw_kind) if type(raw_kind) is str else None
    if kind is None:
        raise _broken(seq, f"unknown entry kind {raw_kind!r}")
    data = decoded["data"]
    if type(data) is not dict:
        raise _broken(seq, f"entry data is a JSON {type(data).__name__}, not an object")
    # Last, because it is the most expensive check.
    if _fast_canonical(decoded) != text:
        raise _broken(seq, "entry bytes are valid JSON but not canonical")
    return time_us, kind, data


def _check_digest(seq: int, what: str, value: object) -> bytes:
    if type(value) is not bytes or len(value) != HASH_SIZE:
        raise AuditIntegrityError(seq, what, f"stored {what} is not {HASH_SIZE} bytes")
    return value


def record_from_row(row: tuple[Any, ...]) -> AuditRecord:
    """Build a record from an ``audit_log`` row ``(seq, prev_hash, hash, entry)``.

    Checks the entry's format, not the chain: that is :func:`verify_log`'s job.
    """
    seq, prev_hash, entry_hash, entry = row
    time_us, kind, data = decode_entry(seq, entry)
    return AuditRecord(
        seq=seq,
        time_us=time_us,
        kind=kind,
        data=MappingProxyType(data),
        prev_hash=_check_digest(seq, "prev_hash", prev_hash),
        hash=_check_digest(seq, "hash", entry_hash),
    )
