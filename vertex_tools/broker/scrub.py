"""Keep secrets out of what the broker hands back to an agent.

An upstream can echo the credential the broker injected: an error message
quoting the key, a debug endpoint reflecting headers, a dashboard API listing
keys in masked form. The agent must never see any of it. Invariants:

1. Every occurrence of a secret's exact text is removed, whatever surrounds it.
2. After scrubbing, the output contains no exact copy of any secret. The
   replacement cannot recreate one when it is spliced in: a replacement that
   overlaps a secret (or is empty) is refused at construction.
3. Also removed, for secrets of at least 8 characters: base64 forms (with the
   whole base64 token around them, which covers ``Basic`` credentials
   ``user:secret``), and masked forms that show a prefix and/or a suffix of
   the secret (``sk_test_****1234``, ``sk_t•••••1234``).
4. JSON escapes (``\\/``, ``\\u0073``) and percent-encoding of any character
   of a secret, alone or mixed with plain characters, are removed for every
   secret.
5. A body with no trace of a secret comes back unchanged (the same object).

Scrubbing works on whole values. The broker buffers the complete,
decompressed response body before scrubbing, so a secret split across network
chunks is seen whole; never feed a :class:`Scrubber` a stream chunk by chunk,
and never a compressed body.

Speed: Python's regex engine costs ~5 ns per byte for any pattern that does
not start with a fixed character, ~0.3 ns for one that does. So a body is
scanned with ``find`` for a few literals (the secret, its base64 cores, its
first 8 and last 4 characters) and with up to three precompiled regexes that
start with ``\\``, ``%`` or ``+`` and match only escapes of characters that
occur in a secret. The escape-aware regex for whole forms runs only in
windows around those hits. A megabyte of API JSON with no secret takes 2-5 ms
for keys shaped like Stripe's, GitHub's or a Supabase JWT; a secret made of
characters that bodies escape all the time (quotes, backslashes, spaces,
non-ASCII) makes every escape a hit, and such a body takes ~20 ms.
"""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from typing import AnyStr, Generic

from vertex_tools.errors import ConfigError

__all__ = ["Scrubber"]

# Shorter secrets are removed in full but do not drive the masked-form or
# base64 rules: four characters of a 6-character secret, or a 6-character
# base64 fragment, turn up in ordinary text far too often.
_MASKED_MIN = 8
_PREFIX_MIN = 8  # a masked form with no suffix must show at least this much of the start
_SUFFIX_MIN = 4  # the shortest end of a secret that identifies it after a mask
_RUN_MIN = 3  # mask characters in a run (one ellipsis is enough on its own)
_REACH = 4096  # how far a match is widened to its whole base64 token or mask run

_MASK_TOKENS = ("\\u2022", "\\u00b7", "\\u00B7", "\\u2026", "*", "•", ".", "x", "X", "·", "…")
_ELLIPSES = ("…", "\\u2026")
_JSON_SHORT = {
    '"': '\\"',
    "\\": "\\\\",
    "/": "\\/",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_LONGEST_TOKEN = max(len(t.encode()) for t in _MASK_TOKENS)
_URLSAFE = str.maketrans("+/", "-_")

_Splits = tuple[tuple[int, int], ...]


class Scrubber:
    """Removes secrets, and the common encodings and masked forms of them, from responses.

    Build one per set of secrets and reuse it: all patterns are compiled in
    the constructor. ``secrets`` must be non-empty strings; ``replacement``
    must be non-empty and must not overlap any secret. Both are checked here
    and refused with :class:`ConfigError` (whose message never shows a secret).
    """

    def __init__(self, secrets: Iterable[str], *, replacement: str = "[REDACTED]") -> None:
        """Compile the patterns for ``secrets``; see the class docstring for what is refused."""
        if isinstance(secrets, str | bytes):
            # a lone string would be read as one secret per character
            raise ConfigError("Scrubber takes a list of secrets, not a single string")
        values: list[str] = []
        for index, secret in enumerate(secrets):
            if not isinstance(secret, str) or not secret:
                raise ConfigError(f"secret #{index} to scrub is empty or not a string")
            if not _utf8_ok(secret):
                raise ConfigError(f"secret #{index} to scrub is not valid Unicode text")
            if secret not in values:
                values.append(secret)
        if not values:
            # fail closed: a scrubber with nothing to remove hides a wiring mistake
            raise ConfigError("Scrubber needs at least one secret")
        if not isinstance(replacement, str) or not replacement or not _utf8_ok(replacement):
            # an empty replacement could join the two sides of a removed
            # secret into a new copy ("se" + "secret" + "cret")
            raise ConfigError("the scrub replacement must be non-empty text")
        for index, secret in enumerate(values):
            if _overlaps(secret, replacement) or _overlaps(_utf8(secret), _utf8(replacement)):
                raise ConfigError(
                    f"the scrub replacement overlaps secret #{index}, so splicing it in "
                    "could recreate the secret; choose another replacement"
                )
        # longest first, so that of two secrets where one contains the other
        # the regex alternation prefers the longer
        values.sort(key=len, reverse=True)
        self._count = len(values)
        self._text = _Engine[str](values, _same, replacement)
        self._bytes = _Engine[bytes](values, _utf8, replacement)

    def __repr__(self) -> str:
        return f"<Scrubber secrets={self._count}>"

    def scrub_bytes(self, data: bytes) -> bytes:
        """Return ``data`` (UTF-8 or ASCII-compatible bytes) with every secret form replaced."""
        return self._bytes.scrub(data)

    def scrub_text(self, text: str) -> str:
        """Return ``text`` with every secret form replaced."""
        return self._text.scrub(text)

    def scrub_headers(self, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Scrub header values; drop a header whose *name* holds a secret form.

        A name cannot carry a replacement (``[`` is not a token character),
        so such a header is removed whole rather than mangled.

        The result is always that of scrubbing each name and value on its own.
        Most answers' headers hold no trace of a secret, so one
        :meth:`_Engine.may_hold` test over all names and values joined comes
        first: a trace in any one of them is a trace in the joined text, so
        when the test finds none, every per-header scrub would have returned
        its input unchanged. Anything but plain ``str`` pairs takes the
        per-header path at once, so odd input fails as it always did.
        """
        pairs: list[tuple[str, str]] = []
        rest = iter(headers)
        for name, value in rest:
            pairs.append((name, value))
            if type(name) is not str or type(value) is not str:
                break  # the per-header path, for this pair and the rest
        else:  # all plain str pairs
            if not self._text.may_hold("\n".join(map("\n".join, pairs))):
                return pairs
        return self._scrub_each(itertools.chain(pairs, rest))

    def _scrub_each(self, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        cleaned: list[tuple[str, str]] = []
        for name, value in headers:
            if self._text.scrub(name) != name:
                continue
            cleaned.append((name, self._text.scrub(value)))
        return cleaned


def _same(text: str) -> str:
    return text


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")


def _utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _overlaps(secret: AnyStr, replacement: AnyStr) -> bool:
    """True when splicing ``replacement`` next to text could form ``secret``."""
    if secret in replacement or replacement in secret:
        return True
    for k in range(1, min(len(secret), len(replacement) + 1)):
        if replacement.endswith(secret[:k]) or replacement.startswith(secret[-k:]):
            return True
    return False


def _hex(value: int, width: int) -> str:
    """Regex for ``value`` in hex, either letter case (encoders differ)."""
    digits = format(value, f"0{width}x")
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in digits)


def _escapes(ch: str) -> list[tuple[str, str]]:
    """``ch`` written as a JSON or percent escape: ``(leading character, regex for the rest)``.

    Split this way because a regex with a literal first character is searched
    with a fast substring scan, while any other regex costs ~5 ns per byte.
    """
    code = ord(ch)
    if code <= 0xFFFF:
        escapes = [("\\", "u" + _hex(code, 4))]
    else:
        # JSON writes a non-BMP character as a UTF-16 surrogate pair
        high = 0xD800 + ((code - 0x10000) >> 10)
        low = 0xDC00 + ((code - 0x10000) & 0x3FF)
        escapes = [("\\", "u" + _hex(high, 4) + r"\\u" + _hex(low, 4))]
    if ch in _JSON_SHORT:
        escapes.append(("\\", re.escape(_JSON_SHORT[ch][1:])))
    encoded = "%".join(_hex(b, 2) for b in _utf8(ch))
    escapes.append(("%", encoded))
    if ch == " ":
        escapes.append(("+", ""))  # form encoding
    return escapes


def _form_pattern(secret: str) -> str:
    """Regex for ``secret`` with any of its characters plain or escaped."""
    return "".join(
        "(?:" + "|".join([re.escape(ch), *(re.escape(c) + rest for c, rest in _escapes(ch))]) + ")"
        for ch in secret
    )


def _escape_finders(secrets: list[str]) -> list[str]:
    """One regex per leading character, each matching any escape of any secret character."""
    rests: dict[str, set[str]] = {}
    for secret in secrets:
        for ch in secret:
            for lead, rest in _escapes(ch):
                rests.setdefault(lead, set()).add(rest)
    return [
        re.escape(lead) + "(?:" + "|".join(sorted(options)) + ")"
        for lead, options in sorted(rests.items())
    ]


def _longest_form(secret: str) -> int:
    """Upper bound on the length of an escaped form, in characters or bytes."""
    return sum(max(12, 3 * len(_utf8(ch))) for ch in secret)


def _base64_cores(secret: bytes) -> set[str]:
    """The base64 text that any encoding containing ``secret`` must contain.

    The secret can start at any byte offset of the encoded data ("user:" before
    it in a Basic credential), so there are three alignments. Of each, only the
    characters whose six bits all come from the secret are kept.
    """
    cores: set[str] = set()
    for shift in range(3):
        encoded = base64.b64encode(bytes(shift) + secret).decode("ascii")
        first = -(-8 * shift // 6)
        last = 8 * (shift + len(secret)) // 6
        core = encoded[first:last]
        cores.update((core, core.translate(_URLSAFE)))
    return cores


def _fewest(needles: list[AnyStr]) -> tuple[AnyStr, ...]:
    """``needles`` less any that contains another: where it occurs, so does the other."""
    unique = set(needles)
    kept = [n for n in unique if not any(o != n and o in n for o in unique)]
    return tuple(sorted(kept, key=lambda n: (len(n), n)))


def _find_all(data: AnyStr, needle: AnyStr) -> Iterator[int]:
    """Every start of ``needle`` in ``data``, overlapping ones included."""
    at = data.find(needle)
    while at != -1:
        yield at
        at = data.find(needle, at + 1)


class _Engine(Generic[AnyStr]):
    """The scrubbing work for one kind of value (``str`` or UTF-8 ``bytes``)."""

    def __init__(
        self, secrets: list[str], encode: Callable[[str], AnyStr], replacement: str
    ) -> None:
        self._replacement: AnyStr = encode(replacement)
        self._empty: AnyStr = encode("")
        self._literals: tuple[AnyStr, ...] = tuple(encode(s) for s in secrets)
        cores = {c for s in secrets if len(s) >= _MASKED_MIN for c in _base64_cores(_utf8(s))}
        self._b64_cores: tuple[AnyStr, ...] = tuple(encode(c) for c in sorted(cores))
        self._b64_left: re.Pattern[AnyStr] = re.compile(encode(r"[A-Za-z0-9+/_\-]*"))
        self._b64_right: re.Pattern[AnyStr] = re.compile(encode(r"[A-Za-z0-9+/_\-]*=*"))

        tokens: tuple[AnyStr, ...] = tuple(encode(t) for t in _MASK_TOKENS)
        self._mask_tokens: tuple[AnyStr, ...] = tokens
        self._ellipses: tuple[AnyStr, ...] = tuple(encode(t) for t in _ELLIPSES)
        bar: AnyStr = encode("|")
        self._mask_token: re.Pattern[AnyStr] = re.compile(bar.join(re.escape(t) for t in tokens))
        self._mask_run: re.Pattern[AnyStr] = re.compile(
            encode("(?:") + bar.join(re.escape(t) for t in tokens) + encode(")+")
        )
        # runs are also read leftwards, over the reversed text
        self._mask_run_reversed: re.Pattern[AnyStr] = re.compile(
            encode("(?:") + bar.join(re.escape(t[::-1]) for t in tokens) + encode(")+")
        )

        self._escape_finders: tuple[re.Pattern[AnyStr], ...] = tuple(
            re.compile(encode(p)) for p in _escape_finders(secrets)
        )
        self._forms: re.Pattern[AnyStr] = re.compile(
            encode("|".join(_form_pattern(s) for s in secrets))
        )
        self._form_reach = max(_longest_form(s) for s in secrets)
        self._masked: tuple[tuple[AnyStr, _Splits, _Splits], ...] = tuple(
            self._with_splits(encode(s)) for s in secrets if len(s) >= _MASKED_MIN
        )
        # what may_hold looks for: the literals that every span scrub() finds
        # starts from (see may_hold)
        needles: list[AnyStr] = list(self._literals + self._b64_cores)
        for secret, _, _ in self._masked:
            needles += [secret[-_SUFFIX_MIN:], secret[:_PREFIX_MIN]]
        self._needles: tuple[AnyStr, ...] = _fewest(needles)

    def _with_splits(self, secret: AnyStr) -> tuple[AnyStr, _Splits, _Splits]:
        """``secret`` with the other places a mask could meet it.

        The secret itself may contain mask characters ("." in a JWT, "x" in
        a hex key), so a masked form can end its visible prefix (or start its
        visible suffix) before the longest match. Each split is
        ``(length, until)``: worth trying only while the longest match is at
        most ``until`` long. Beyond that the run at the split is made of the
        secret's own characters, and if those are not a mask (one "X" in a
        JWT header) they never become one: thousands of JWTs in a body then
        cost a few string compares each.
        """
        n = len(secret)
        starts = tuple(t[:1] for t in self._mask_tokens)
        ends = tuple(t[-1:] for t in self._mask_tokens)
        prefix: list[tuple[int, int]] = []
        for k in range(_PREFIX_MIN, n):
            run = self._mask_run.match(secret, k)
            if run is not None:
                until = run.end()
                if self._is_mask(run.group()):
                    until = n
                elif secret[until : until + 1] in starts:
                    until += _LONGEST_TOKEN  # a longer token might continue past the match
                prefix.append((k, until))
        suffix: list[tuple[int, int]] = []
        for length in range(_SUFFIX_MIN, n):
            run = self._mask_run_reversed.match(secret[: n - length][::-1])
            if run is not None:
                run_start = n - length - run.end()
                until = n - run_start
                if self._is_mask(secret[run_start : n - length]):
                    until = n
                elif secret[run_start - 1 : run_start] in ends:
                    until += _LONGEST_TOKEN
                suffix.append((length, until))
        return secret, tuple(reversed(prefix)), tuple(reversed(suffix))

    def may_hold(self, data: AnyStr) -> bool:
        """False only when :meth:`scrub` would certainly return ``data`` unchanged.

        Sound because it looks for what every span of :meth:`scrub` starts from:

        - a literal secret: that literal;
        - a base64 token: one of ``_b64_cores``, found by ``find``;
        - an escaped form: ``_escaped_forms`` runs ``_forms`` only in windows
          around hits of ``_escape_finders`` and adds nothing without a hit;
        - a masked form: ``_masked_forms`` adds spans only in its two loops,
          over the occurrences of ``secret[-_SUFFIX_MIN:]`` (every suffix-side
          form, whatever the split or mask) and of ``secret[:_PREFIX_MIN]``
          (every prefix-only form: its visible prefix is at least that long).

        ``_needles`` holds those literals, less any containing another (which
        is then found too). With no needle and no finder hit, ``scrub`` has no
        span and returns ``data`` itself. The finders have no anchors,
        lookarounds or word boundaries, and a substring is found in any text
        around it, so when this is False for a text it is False for every
        piece of it: one call can clear many values joined together.

        A new kind of form in :meth:`scrub` needs its needle here too; the
        property tests compare the two on text full of near and exact forms.
        """
        for needle in self._needles:
            if needle in data:
                return True
        return any(finder.search(data) is not None for finder in self._escape_finders)

    def scrub(self, data: AnyStr) -> AnyStr:
        """Return ``data`` with every span holding a secret form replaced (``data`` if none)."""
        spans: list[tuple[int, int]] = []
        for literal in self._literals:
            spans.extend((at, at + len(literal)) for at in _find_all(data, literal))
        for core in self._b64_cores:
            spans.extend(self._b64_token(data, at, at + len(core)) for at in _find_all(data, core))
        self._escaped_forms(data, spans)
        for secret, prefix_splits, suffix_splits in self._masked:
            self._masked_forms(data, secret, prefix_splits, suffix_splits, spans)
        if not spans:
            return data
        return self._splice(data, spans)

    def _b64_token(self, data: AnyStr, start: int, end: int) -> tuple[int, int]:
        """Widen a base64 core to the whole token: its edges still encode bits of the secret."""
        left = self._b64_left.match(data[max(0, start - _REACH) : start][::-1])
        right = self._b64_right.match(data, end, min(len(data), end + _REACH))
        return (
            start - (left.end() if left is not None else 0),
            right.end() if right is not None else end,
        )

    def _escaped_forms(self, data: AnyStr, spans: list[tuple[int, int]]) -> None:
        # an escaped form holds at least one escape of one of its characters:
        # run the slow escape-aware regex only around those
        hits = sorted(m.start() for f in self._escape_finders for m in f.finditer(data))
        windows: list[tuple[int, int]] = []
        for at in hits:
            lo = max(0, at - self._form_reach)
            hi = min(len(data), at + self._form_reach)
            if windows and lo <= windows[-1][1]:
                windows[-1] = (windows[-1][0], hi)
            else:
                windows.append((lo, hi))
        for lo, hi in windows:
            spans.extend(m.span() for m in self._forms.finditer(data, lo, hi))

    def _masked_forms(
        self,
        data: AnyStr,
        secret: AnyStr,
        prefix_splits: _Splits,
        suffix_splits: _Splits,
        spans: list[tuple[int, int]],
    ) -> None:
        # Each hit is first tested for the usual dead end (neither a mask nor
        # more of the secret next to the needle) without the full search:
        # a shared prefix such as a JWT header can occur thousands of times.
        tokens = self._mask_tokens
        n = len(secret)
        before_suffix = secret[n - _SUFFIX_MIN - 1 : n - _SUFFIX_MIN]
        for at in _find_all(data, secret[-_SUFFIX_MIN:]):
            if data.endswith(tokens, 0, at) or data[at - 1 : at] == before_suffix:
                span = self._ending_in_suffix(data, secret, at + _SUFFIX_MIN, suffix_splits)
                if span is not None:
                    spans.append(span)
        after_prefix = secret[_PREFIX_MIN : _PREFIX_MIN + 1]
        for at in _find_all(data, secret[:_PREFIX_MIN]):
            end = at + _PREFIX_MIN
            if data.startswith(tokens, end) or data[end : end + 1] == after_prefix:
                span = self._starting_with_prefix(data, secret, at, prefix_splits)
                if span is not None:
                    spans.append(span)

    def _ending_in_suffix(
        self, data: AnyStr, secret: AnyStr, end: int, splits: _Splits
    ) -> tuple[int, int] | None:
        """``[prefix] mask suffix`` ending at ``end``, where the suffix is >= 4 long."""
        n = len(secret)
        # the longest end of the secret that ends at `end`; every shorter one does too
        lo: int = _SUFFIX_MIN
        hi: int = min(n, end)
        if data[end - lo - 1 : end - lo] != secret[n - lo - 1 : n - lo]:
            hi = lo  # the usual case: the match stops at the needle
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if data.endswith(secret[n - mid :], 0, end):
                lo = mid
            else:
                hi = mid - 1
        for length in [lo, *(k for k, until in splits if k < lo <= until)]:
            run_end = end - length
            if not data.endswith(self._mask_tokens, 0, run_end):
                continue
            run = self._mask_run_reversed.match(data[max(0, run_end - _REACH) : run_end][::-1])
            if run is None or not self._is_mask(data[run_end - run.end() : run_end]):
                continue
            run_start = run_end - run.end()
            return (run_start - _prefix_before(data, secret, run_start), end)
        return None

    def _starting_with_prefix(
        self, data: AnyStr, secret: AnyStr, start: int, splits: _Splits
    ) -> tuple[int, int] | None:
        """``prefix mask [suffix]`` starting at ``start``, where the prefix is >= 8 long."""
        # the longest start of the secret found at `start`; every shorter one is too
        lo: int = _PREFIX_MIN
        hi: int = min(len(secret), len(data) - start)
        if data[start + lo : start + lo + 1] != secret[lo : lo + 1]:
            hi = lo  # the usual case: the match stops at the needle
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if data.startswith(secret[:mid], start):
                lo = mid
            else:
                hi = mid - 1
        for length in [lo, *(k for k, until in splits if k < lo <= until)]:
            run_start = start + length
            if not data.startswith(self._mask_tokens, run_start):
                continue
            run = self._mask_run.match(data, run_start, min(len(data), run_start + _REACH))
            if run is None or not self._is_mask(run.group()):
                continue
            return (start, run.end() + _suffix_after(data, secret, run.end()))
        return None

    def _is_mask(self, run: AnyStr) -> bool:
        if any(e in run for e in self._ellipses):
            return True
        return len(self._mask_token.findall(run)) >= _RUN_MIN

    def _splice(self, data: AnyStr, spans: list[tuple[int, int]]) -> AnyStr:
        spans.sort()
        pieces: list[AnyStr] = []
        done = 0
        start, end = spans[0]
        for next_start, next_end in spans[1:]:
            # touching spans merge too: one replacement, never two side by side
            if next_start <= end:
                end = max(end, next_end)
                continue
            pieces += [data[done:start], self._replacement]
            done, start, end = end, next_start, next_end
        pieces += [data[done:start], self._replacement, data[end:]]
        return self._empty.join(pieces)


def _prefix_before(data: AnyStr, secret: AnyStr, end: int) -> int:
    """Length of the longest start of ``secret`` that ends at ``data[end]``."""
    for length in range(min(len(secret), end), 0, -1):
        if data.endswith(secret[:length], 0, end):
            return length
    return 0


def _suffix_after(data: AnyStr, secret: AnyStr, start: int) -> int:
    """Length of the longest end of ``secret`` (>= 4) found at ``data[start]``, else 0."""
    n = len(secret)
    for length in range(min(n, len(data) - start), _SUFFIX_MIN - 1, -1):
        if data.startswith(secret[n - length :], start):
            return length
    return 0
