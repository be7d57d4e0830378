"""verify_log's fast entry check: it accepts only what decode_entry accepts.

The fast path may leave an entry to decode_entry (that costs time, never a
verdict); it must never accept an entry decode_entry refuses. These tests check
the premises the module docstring's argument rests on (orjson writes strings,
keys and integers as canonical_json does) and the property itself on random
entries and on mutations of them.
"""

from __future__ import annotations

import json
from typing import Any

import orjson  # a dependency on CPython (pyproject.toml): its absence is a failure
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.audit.test_entry import full_canonical, json_objects, kinds, seqs, times
from vertex_tools.audit import EntryKind
from vertex_tools.audit._entry import MAX_DEPTH, canonical_json, decode_entry
from vertex_tools.audit._fastcheck import _PROBE, entry_checker
from vertex_tools.errors import AuditIntegrityError


class NotAccepted(Exception):
    """Raised by the fallback: the fast path did not accept the entry."""


def _refuse(seq: int, entry: object) -> None:
    raise NotAccepted


fast_only = entry_checker(fallback=_refuse)
check = entry_checker()


def fast_accepts(seq: int, entry: object) -> bool:
    try:
        fast_only(seq, entry)
    except NotAccepted:
        return False
    return True


def verdict(fn: Any, seq: int, entry: object) -> tuple[str, str] | None:
    """None when accepted, else the error's (what, detail)."""
    try:
        fn(seq, entry)
    except AuditIntegrityError as exc:
        return exc.what, exc.detail
    return None


# -- the premises -------------------------------------------------------------


def test_orjson_escapes_every_character_as_canonical_json_does() -> None:
    # One string per code point in a list: both outputs are valid JSON of the same
    # list, so equal bytes mean each element was written the same way.
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    assert orjson.dumps(chars) == canonical_json(chars).encode()


sixty_four_bit = st.integers(min_value=-(2**63), max_value=2**64 - 1)
plain_values = st.recursive(
    st.none() | st.booleans() | sixty_four_bit | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
plain_objects = st.dictionaries(st.text(max_size=8), plain_values, max_size=6)


@given(value=plain_values)
def test_orjson_sorted_output_is_canonical_json(value: object) -> None:
    # Keys sorted by code point: UTF-8 byte order is code point order.
    assert orjson.dumps(value, option=orjson.OPT_SORT_KEYS) == canonical_json(value).encode()


def test_the_probe_agrees() -> None:
    assert orjson.dumps(_PROBE, option=orjson.OPT_SORT_KEYS) == canonical_json(_PROBE).encode()


# -- the property ---------------------------------------------------------------


@given(seq=seqs, time_us=times, kind=kinds, data=plain_objects)
def test_fast_path_accepts_canonical_entries(
    seq: int, time_us: int, kind: EntryKind, data: dict[str, Any]
) -> None:
    entry = full_canonical(seq, time_us, kind, data)
    assert fast_accepts(seq, entry)
    check(seq, entry)


@given(seq=seqs, time_us=times, kind=kinds, data=json_objects)
def test_canonical_entries_the_fast_path_leaves_are_still_accepted(
    seq: int, time_us: int, kind: EntryKind, data: dict[str, Any]
) -> None:
    # json_objects holds integers of any size: past 64 bits orjson reads a float,
    # and decode_entry decides.
    check(seq, full_canonical(seq, time_us, kind, data))


@st.composite
def mutated_entries(draw: st.DrawFn) -> tuple[int, bytes]:
    seq = draw(seqs)
    entry = bytearray(
        full_canonical(seq, draw(times), draw(kinds), draw(json_objects | plain_objects))
    )
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        at = draw(st.integers(min_value=0, max_value=len(entry)))
        edit = draw(st.sampled_from(["replace", "insert", "delete"]))
        # Bytes that matter to JSON, and any byte.
        byte = draw(st.sampled_from(b' "\\{}[],:.-eE019u/\x00\x7f\xc3\xa9') | st.integers(0, 255))
        if edit == "insert":
            entry.insert(at, byte)
        elif at < len(entry):
            if edit == "replace":
                entry[at] = byte
            else:
                del entry[at]
    return draw(st.sampled_from([seq, seq + 1])), bytes(entry)


@settings(max_examples=1000)
@given(case=mutated_entries())
def test_fast_path_accepts_nothing_decode_entry_refuses(case: tuple[int, bytes]) -> None:
    seq, entry = case
    expected = verdict(decode_entry, seq, entry)
    if fast_accepts(seq, entry):
        assert expected is None
    assert verdict(check, seq, entry) == expected


@given(
    seq=seqs,
    time_us=times,
    kind=kinds,
    data=plain_objects,
    version=st.sampled_from([1, 1, 2, 0, "1", True]),
    indent=st.sampled_from([None, 0, 1]),
    ascii_only=st.booleans(),
    sort=st.booleans(),
    separators=st.sampled_from([(",", ":"), (", ", ": "), (",", ": ")]),
)
def test_reformatted_entries_get_decode_entrys_verdict(
    seq: int,
    time_us: int,
    kind: EntryKind,
    data: dict[str, Any],
    version: object,
    indent: int | None,
    ascii_only: bool,
    sort: bool,
    separators: tuple[str, str],
) -> None:
    envelope = {"v": version, "seq": seq, "time": time_us, "kind": kind.value, "data": data}
    entry = json.dumps(
        envelope, indent=indent, ensure_ascii=ascii_only, sort_keys=sort, separators=separators
    ).encode()
    expected = verdict(decode_entry, seq, entry)
    if fast_accepts(seq, entry):
        assert expected is None
    assert verdict(check, seq, entry) == expected


GOOD = full_canonical(7, 1_000, EntryKind.ADMIN, {"a": [1, "x"], "b": None})


def _nested(depth: int) -> bytes:
    return full_canonical(7, 1_000, EntryKind.ADMIN, {"d": "x"}).replace(
        b'"x"', b"[" * depth + b"]" * depth
    )


@pytest.mark.parametrize(
    ("entry", "accepted"),
    [
        pytest.param(GOOD, True, id="good"),
        # Canonical text that is not an audit entry: floats are never written.
        pytest.param(GOOD.replace(b"[1,", b"[1.5,"), False, id="float"),
        pytest.param(GOOD.replace(b"[1,", b"[1e5,"), False, id="exponent"),
        pytest.param(GOOD.replace(b"[1,", b"[-0,"), False, id="minus-zero"),
        pytest.param(GOOD.replace(b"[1,", b"[01,"), False, id="leading-zero"),
        # Past 64 bits orjson reads a float; the stdlib reads an int and accepts.
        pytest.param(GOOD.replace(b"[1,", b"[18446744073709551616,"), True, id="big-int"),
        pytest.param(GOOD.replace(b'"x"', b'"\\u0078"'), False, id="needless-escape"),
        pytest.param(GOOD.replace(b'"x"', b'"\\u001F"'), False, id="upper-hex-escape"),
        pytest.param(GOOD.replace(b'"x"', b'"\\u001f"'), True, id="control-escape"),
        pytest.param(GOOD.replace(b'"x"', b'"\\/"'), False, id="escaped-slash"),
        pytest.param(GOOD.replace(b'"x"', b'"\\ud800"'), False, id="lone-surrogate"),
        pytest.param(GOOD.replace(b'"x"', b'"\xed\xa0\x80"'), False, id="utf8-surrogate"),
        pytest.param(GOOD.replace(b'"b":null', b'"b":null,"b":null'), False, id="duplicate"),
        pytest.param(GOOD.replace(b'"time":1000', b'"time":01000'), False, id="time-zero"),
        pytest.param(GOOD.replace(b'"seq":7', b'"seq":07'), False, id="seq-zero"),
        pytest.param(GOOD.replace(b'"seq":7', b'"seq":8'), False, id="other-seq"),
        pytest.param(GOOD.replace(b'"v":1', b'"v":2'), False, id="v2"),
        pytest.param(GOOD + b" ", False, id="trailing-space"),
        pytest.param(GOOD[:-1] + b',"w":1}', False, id="extra-key"),
        pytest.param(
            GOOD.replace(b'"b":null', b'"b":null,"kind":"admin","seq":7,"time":1000,"v":1}'),
            False,
            id="second-tail",
        ),
        pytest.param(
            full_canonical(7, 1_000, EntryKind.ADMIN, {"kind": ',"kind":"admin"'}),
            True,
            id="tail-text-in-data",
        ),
        pytest.param(
            full_canonical(7, 1_000, EntryKind.ADMIN, {"a": 1, "kind": "admin", "seq": 7}),
            True,
            id="tail-keys-in-data",
        ),
        pytest.param(_nested(MAX_DEPTH + 5), True, id="deeper-than-written"),
        # orjson reads 1,000 levels; the stdlib refuses them (RecursionError).
        pytest.param(_nested(1_000), False, id="deeper-than-the-stdlib-reads"),
    ],
)
def test_checker_agrees_with_decode_entry(entry: bytes, accepted: bool) -> None:
    expected = verdict(decode_entry, 7, entry)
    assert (expected is None) == accepted
    assert verdict(check, 7, entry) == expected
