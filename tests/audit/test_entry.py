"""Entry encoding: canonical bytes, refused data, and decoding of hostile bytes."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vertex_tools.audit import GENESIS_HASH, AuditRecord, EntryKind
from vertex_tools.audit._entry import (
    _fast_canonical,
    canonical_json,
    chain_hash,
    decode_entry,
    encode_data,
    entry_bytes,
    format_time_us,
)
from vertex_tools.errors import AuditIntegrityError

json_leaves = st.none() | st.booleans() | st.integers() | st.text()
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=6)
kinds = st.sampled_from(list(EntryKind))
seqs = st.integers(min_value=1, max_value=2**40)
times = st.integers(min_value=0, max_value=4_000_000_000_000_000)


def full_canonical(seq: int, time_us: int, kind: EntryKind, data: Any) -> bytes:
    """The definition of an entry's bytes, spelled out with json.dumps."""
    envelope = {"v": 1, "seq": seq, "time": time_us, "kind": kind.value, "data": data}
    return json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@given(seq=seqs, time_us=times, kind=kinds, data=json_objects)
def test_entry_bytes_are_the_canonical_json_of_the_whole_entry(
    seq: int, time_us: int, kind: EntryKind, data: dict[str, Any]
) -> None:
    entry = entry_bytes(seq, time_us, kind, encode_data(data))
    assert entry == full_canonical(seq, time_us, kind, data)
    assert decode_entry(seq, entry) == (time_us, kind, data)


@given(value=json_values)
def test_fast_canonical_encoder_agrees_with_the_stdlib(value: object) -> None:
    assert _fast_canonical(value) == canonical_json(value)


def decode_error(seq: int, raw: bytes) -> AuditIntegrityError | None:
    """Decode, returning our error instead of raising it; anything else propagates."""
    try:
        decode_entry(seq, raw)
    except AuditIntegrityError as exc:
        return exc
    return None


@given(raw=st.binary(max_size=300), seq=seqs)
def test_decoding_arbitrary_bytes_raises_only_integrity_errors(raw: bytes, seq: int) -> None:
    error = decode_error(seq, raw)
    assert error is None or (error.seq, error.what) == (seq, "encoding")


def _reformat(value: object, indent: int | None, ascii_only: bool, sort: bool) -> bytes:
    return json.dumps(value, indent=indent, ensure_ascii=ascii_only, sort_keys=sort).encode()


@given(
    seq=seqs,
    time_us=times,
    kind=kinds,
    data=json_objects,
    version=st.sampled_from([1, 1, 2, 0, "1", True]),
    indent=st.sampled_from([None, 0, 1]),
    ascii_only=st.booleans(),
    sort=st.booleans(),
)
def test_decoding_near_miss_entries_raises_only_integrity_errors(
    seq: int,
    time_us: int,
    kind: EntryKind,
    data: dict[str, Any],
    version: object,
    indent: int | None,
    ascii_only: bool,
    sort: bool,
) -> None:
    # Entries that are almost right reach the deeper checks that random bytes never do.
    envelope = {"v": version, "seq": seq, "time": time_us, "kind": kind.value, "data": data}
    raw = _reformat(envelope, indent, ascii_only, sort)
    error = decode_error(seq, raw)
    if error is None:
        assert raw == full_canonical(seq, time_us, kind, data)
    else:
        assert (error.seq, error.what) == (seq, "encoding")


GOOD = full_canonical(7, 1_000, EntryKind.ADMIN, {"a": [1, "x"], "b": None})


@pytest.mark.parametrize(
    ("entry", "detail"),
    [
        pytest.param("text, not a blob", "not a BLOB", id="text-column"),
        pytest.param(b"\xff\xfe", "not UTF-8 JSON", id="not-utf8"),
        pytest.param(b"", "not UTF-8 JSON", id="empty"),
        pytest.param(b"[" * 100_000, "not UTF-8 JSON", id="deep-nesting"),
        pytest.param(GOOD + b" ", "after the JSON value", id="trailing-space"),
        pytest.param(b"[1,2]", "not an object", id="array"),
        pytest.param(GOOD.replace(b'"v":1', b'"v":2'), "unknown entry version v=2", id="v2"),
        pytest.param(GOOD.replace(b'"v":1', b'"v":true'), "unknown entry version", id="v-true"),
        pytest.param(GOOD.replace(b',"v":1', b""), "unknown entry version v=None", id="no-v"),
        pytest.param(GOOD.replace(b'"seq":7', b'"seq":8'), "says seq 8", id="other-seq"),
        pytest.param(GOOD.replace(b'"time":1000', b'"time":1.5'), "not UTF-8 JSON", id="float"),
        pytest.param(GOOD.replace(b'"time":1000', b'"time":NaN'), "not UTF-8 JSON", id="nan"),
        pytest.param(GOOD.replace(b'"time":1000', b'"time":"1"'), "time", id="time-str"),
        pytest.param(GOOD.replace(b'"admin"', b'"root"'), "unknown entry kind", id="kind"),
        pytest.param(GOOD.replace(b'{"a":[1,"x"],"b":null}', b"[]"), "data", id="data-list"),
        pytest.param(GOOD.replace(b'"a":[1,"x"]', b'"a":[1, "x"]'), "not canonical", id="space"),
        pytest.param(
            GOOD.replace(b'"a":[1,"x"],"b":null', b'"b":null,"a":[1,"x"]'),
            "not canonical",
            id="unsorted",
        ),
        pytest.param(GOOD.replace(b'"x"', b'"\\u0078"'), "not canonical", id="escaped"),
        pytest.param(
            GOOD.replace(b'"b":null', b'"b":null,"b":null'), "not canonical", id="duplicate"
        ),
        pytest.param(GOOD.replace(b"[1,", b"[-0,"), "not canonical", id="minus-zero"),
        pytest.param(GOOD.replace(b'"x"', b'"\\ud800"'), "not canonical", id="lone-surrogate"),
        pytest.param(GOOD.replace(b"}", b',"0":1}', 1), "not canonical", id="unsorted-data"),
        pytest.param(GOOD[:-1] + b',"w":1}', "keys", id="extra-key"),
    ],
)
def test_decode_entry_names_what_is_wrong(entry: object, detail: str) -> None:
    with pytest.raises(AuditIntegrityError) as caught:
        decode_entry(7, entry)
    assert (caught.value.seq, caught.value.what) == (7, "encoding")
    assert detail in caught.value.detail


def test_good_entry_decodes() -> None:
    assert decode_entry(7, GOOD) == (1_000, EntryKind.ADMIN, {"a": [1, "x"], "b": None})


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"amount": 1.5}, "data['amount']"),
        ({"amount": 10.0}, "data['amount']"),
        ({"x": math.nan}, "data['x']"),
        ({"x": math.inf}, "data['x']"),
        ({"items": [1, 2, 0.1]}, "data['items'][2]"),
        ({"outer": {"inner": [{"p": -0.0}]}}, "data['outer']['inner'][0]['p']"),
    ],
)
def test_floats_are_refused_naming_the_key(data: dict[str, Any], where: str) -> None:
    with pytest.raises(TypeError, match="float") as caught:
        encode_data(data)
    assert where in str(caught.value)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ({"t": (1, 2)}, TypeError, "data['t'] is a tuple"),
        ({"s": {1}}, TypeError, "data['s'] is a set"),
        ({"b": b"raw"}, TypeError, "data['b'] is a bytes"),
        ({"o": object()}, TypeError, "data['o'] is a object"),
        ({"d": {1: "x"}}, TypeError, "non-string key 1"),
        ({"s": "\ud800"}, ValueError, "not valid Unicode"),
    ],
)
def test_other_non_json_data_is_refused(
    data: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        encode_data(data)


def test_non_string_top_level_key_and_non_mapping_are_refused() -> None:
    with pytest.raises(TypeError, match="non-string key"):
        encode_data({1: "x"})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="must be a mapping"):
        encode_data([("a", 1)])  # type: ignore[arg-type]


def test_cyclic_and_too_deep_data_are_refused() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="nested deeper"):
        encode_data({"c": cyclic})
    deep: Any = "leaf"
    for _ in range(40):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper"):
        encode_data({"d": deep})


def test_str_and_int_enums_encode_as_their_values() -> None:
    assert encode_data({"kind": EntryKind.ADMIN, "flag": True}) == '{"flag":true,"kind":"admin"}'


def test_chain_hash_is_domain_separated_blake3() -> None:
    import blake3

    entry = b'{"data":{},"kind":"admin","seq":1,"time":0,"v":1}'
    assert chain_hash(GENESIS_HASH, entry) == (
        blake3.blake3(b"vertex_tools.audit.entry.v1\x00" + bytes(32) + entry).digest()
    )
    assert chain_hash(GENESIS_HASH, entry) != blake3.blake3(bytes(32) + entry).digest()


def test_to_json_shows_exact_utc_time_and_hex_hashes() -> None:
    record = AuditRecord(
        seq=3,
        time_us=1_700_000_000_000_001,
        kind=EntryKind.OUTCOME,
        data={"status": 200},
        prev_hash=bytes(32),
        hash=b"\xab" * 32,
    )
    assert record.to_json() == {
        "seq": 3,
        "time": "2023-11-14T22:13:20.000001Z",
        "kind": "outcome",
        "data": {"status": 200},
        "hash": "ab" * 32,
        "prev_hash": "00" * 32,
    }
    assert format_time_us(0) == "1970-01-01T00:00:00.000000Z"
