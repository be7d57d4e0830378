"""A faster check of an entry's bytes for ``verify_log``, with ``decode_entry``'s verdicts.

``decode_entry`` decodes an entry with the stdlib and re-encodes it to prove the
bytes canonical: about 6 us of the 9 us that verification spends per entry.
:func:`entry_checker`'s check gets the same answer in about a third of that, and never a
different one: it only ever *accepts* on its fast path; anything the fast path
cannot accept goes to ``decode_entry``, which accepts it or raises the error that
names what is wrong. So a fast path that is too strict costs time, never
correctness; what must hold is that it accepts nothing ``decode_entry`` refuses.

The fast path accepts ``entry`` for ``seq`` when all of these hold:

1. ``entry`` is ``b'{"data":' + D + TAIL``, where ``TAIL`` is exactly
   ``,"kind":"K","seq":S,"time":T,"v":1}`` with a known kind ``K``, ``S`` the
   decimal of ``seq`` and ``T`` a decimal in the range ``check_time_us`` allows
   (integers written the one canonical way: no sign on 0, no leading zeros);
2. ``D`` parses with orjson to a dict ``d`` holding no float, nested at most
   ``MAX_DEPTH`` deep (deeper data is never written; the stdlib decides; and
   orjson writes fewer levels than it reads, so this comes before 3);
3. ``orjson.dumps(d, OPT_SORT_KEYS) == D``.

Why that implies ``decode_entry`` accepts: for a value made of dict, list, str,
int (orjson reads at most 64 bits; larger becomes a float, refused by 2), bool
and None, orjson's sorted compact output is byte for byte ``canonical_json``'s
UTF-8: the same separators, keys sorted by code point (UTF-8 byte order is code
point order), integers in decimal, the same literals, and strings escaped the
same way character by character (``"``, ``\\``, ``\\b\\f\\n\\r\\t`` and ``\\u00XX``
for other control characters; everything else as itself). So ``D`` is
``canonical_json(d)``, the stdlib reads it back as ``d``, and ``entry`` is
``entry_bytes(seq, T, K, D)``: the one canonical encoding, which ``decode_entry``
accepts. The string and sort claims are checked for every code point by the
tests, and on first use here against a probe, so an orjson that changed its
output switches the fast path off instead of changing a verdict.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from vertex_tools.audit._entry import (
    _MAX_TIME_US,
    _MIN_TIME_US,
    MAX_DEPTH,
    EntryKind,
    canonical_json,
    decode_entry,
)

__all__ = ["entry_checker"]

_HEAD = b'{"data":{'
_TAIL_START = b',"kind":"'
_TAIL = re.compile(
    rb',"kind":"(?:'
    + b"|".join(re.escape(kind.value.encode()) for kind in EntryKind)
    # seq >= 1 and fits SQLite's 64 bits; time's range ends near 2.5e17. Bounded digit
    # counts keep int() cheap and clear of its limit on very long digit strings.
    + rb')","seq":([1-9][0-9]{0,18}),"time":(0|-?[1-9][0-9]{0,17}),"v":1\}\Z'
)
_SCALARS = frozenset({str, int, bool, type(None)})

# A value exercising every rule the module docstring relies on: escapes of every
# control character, quote, backslash, DEL, U+2028, astral characters, keys whose
# code-point order differs from their UTF-16 order, and 64-bit integer limits.
_PROBE: dict[str, Any] = {
    "".join(map(chr, range(0x20))) + '"\\/\x7f\u2028\ufeff\U0001f600': [
        -(2**63),
        2**64 - 1,
        0,
        True,
        False,
        None,
        "",
    ],
    "\uffff": {"\U00010000": [], "é": {}, "Z": "a", "a": "Z"},
    "": [[[]], {"k": -1}],
}


def _plain(value: Any, depth: int) -> bool:
    """Whether ``value`` (a dict or list from orjson) holds no float and nests at most
    ``MAX_DEPTH`` deep."""
    items = value.values() if type(value) is dict else value
    kinds = set(map(type, items))
    if kinds <= _SCALARS:
        return True
    if float in kinds or depth >= MAX_DEPTH:
        return False
    for item in items:
        kind = type(item)
        if (kind is dict or kind is list) and not _plain(item, depth + 1):
            return False
    return True


@functools.cache
def _load_orjson() -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]] | None:
    """orjson's loads and sorted dumps, if installed and agreeing with the probe.

    Imported on first use, not with this module: the broker imports the audit
    package but never verifies.
    """
    try:
        import orjson
    except ImportError:
        return None
    loads = orjson.loads
    dumps = functools.partial(orjson.dumps, option=orjson.OPT_SORT_KEYS)
    try:
        text = canonical_json(_PROBE).encode()
        if dumps(_PROBE) != text or loads(text) != _PROBE:
            return None
    except (TypeError, ValueError):  # orjson.JSONEncodeError/JSONDecodeError subclass these
        return None
    return loads, dumps


def entry_checker(
    fallback: Callable[[int, object], object] = decode_entry,
) -> Callable[[int, object], None]:
    """A function ``check(seq, entry)`` that raises ``AuditIntegrityError`` exactly
    when ``decode_entry(seq, entry)`` would, faster (see the module docstring).

    ``fallback`` decides whatever the fast path does not accept; the tests pass one
    that refuses everything, to see what the fast path accepts on its own.
    """
    codec = _load_orjson()
    if codec is None:
        return _fallback_only(fallback)
    loads, dumps = codec
    head, tail_start, tail_match = _HEAD, _TAIL_START, _TAIL.match
    scalars, min_time, max_time = _SCALARS, _MIN_TIME_US, _MAX_TIME_US

    def check(seq: int, entry: object) -> None:
        # The steps are the module docstring's. Every "not here" falls through to
        # decode_entry, which accepts or says what is wrong.
        if type(entry) is bytes and entry.startswith(head):
            # 1. A canonical entry's last ',"kind":"' is the envelope's own (nothing
            #    after it can hold one); in any other entry a wrong pick only means
            #    not accepting here.
            start = entry.rfind(tail_start)
            tail = tail_match(entry, start) if start > 0 else None
            if tail is not None:
                seq_text, time_text = tail.groups()
                if int(seq_text) == seq and min_time <= int(time_text) <= max_time:
                    data = entry[8:start]
                    # 2. and 3.
                    try:
                        decoded = loads(data)
                    except ValueError:  # orjson.JSONDecodeError; invalid UTF-8 too
                        decoded = None
                    # The float and depth check first: orjson writes fewer levels than
                    # it reads.
                    if (
                        type(decoded) is dict
                        and (set(map(type, decoded.values())) <= scalars or _plain(decoded, 1))
                        and dumps(decoded) == data
                    ):
                        return
        fallback(seq, entry)

    return check


def _fallback_only(fallback: Callable[[int, object], object]) -> Callable[[int, object], None]:
    def check(seq: int, entry: object) -> None:
        fallback(seq, entry)

    return check
