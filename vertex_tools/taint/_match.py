"""Find where a value appears in a body of text: the pure matching core of taint tracking.

A :class:`TextIndex` holds the texts of one trust class (say, every tool output the
agent read) with the name of the source of each. ``find(value)`` answers where the
value, or a recognisable piece of it (an *atom*), appears. It uses only the standard
library, so both the agent process and the broker use it.

Matching semantics, in the order they are tried (one :class:`Hit` per source: the
first comparison that matches there):

1. **Numbers** (:attr:`MatchKind.NUMBER`). Ints, floats, Decimals and strings that are
   a single numeric literal (``"$1,000.00"``) are compared by value with the numbers
   found in the texts. Texts are read as ``1000``, ``1,000.00``, ``1 000``, ``$1,000``
   and, when unambiguous, European ``1.000,00`` or ``12,5``. The value also matches a
   text number equal to it divided by 100 (agents write money in minor units:
   ``100000`` cents for "$1,000.00"). Signs are ignored. An integer of six digits or
   more also matches the same digits as an account number (``ACCOUNT``).
2. **A value that is a whole atom**: a URL, a bare domain, an e-mail address, an
   IBAN-like identifier, an account number or an identifier such as ``acct_1Nv0...``
   (kinds ``URL``, ``EMAIL``, ``ACCOUNT``; see "Atoms" below).
3. **The whole string** after :func:`normalise`. It matches a text that is exactly
   the value (``EXACT``), a text equal to it once normalised (``NORMALISED``), or a
   longer text holding it on token boundaries (``SUBSTRING``: ``" "+v+" "`` inside
   ``" "+text+" "``). Values of 8 or more alphanumerics are compared *squashed*
   (every space removed from both sides, the match still starting and ending on
   token boundaries), so ``"ACCT123456"`` matches ``"acct-123-456"``. Excerpts of
   these hits are of the normalised text. Skipped when step 2 already matched (the
   atom look-up found every source holding it; the scan would add nothing).
4. **Atoms embedded in a longer value** (``EMBEDDED``): a recipient line, a URL or a
   sentence that carries an untrusted URL, host, e-mail, IBAN, account number or
   identifier.

Atoms (extracted from texts when added, from values when checked):

- URLs (``http``, ``https``, ``ws``, ``wss``, ``ftp``), compared with the scheme and
  host lowercased, a Unicode host in punycode, the default port, the trailing slash
  and the fragment dropped; and by host: a URL whose host appears in the texts as a
  URL host or a bare domain (``evil.example``) matches. Hosts compare exactly (a
  subdomain is another host).
- E-mail addresses, casefolded, with a ``+tag`` dropped (``a+tag@x`` is ``a@x``).
- IBAN-like identifiers: two letters, two digits, 11-30 letters or digits, printed
  in groups of four or not; compared uppercase without spaces.
- Account numbers: runs of 6 or more digits, possibly split by spaces or dashes;
  compared as the digits alone.
- Identifiers: a word of 6 or more characters with an underscore or mixing letters
  and digits (``cus_9s8d``, ``ch_3Abc``, ``pi_3N...``); compared casefolded.

Blind spots, by design (the approve effect exists for what slips through):

- Strings with fewer than 4 alphanumerics and integers below 10 never match as a
  whole value: they are everywhere, and matching them would taint every call.
- Paraphrase, translation, arithmetic other than /100, and values laundered through
  a summary are not recognised.
- Untrusted words inside a longer argument are caught only when they form an atom:
  ``"please add octocat-evil"`` does not match a text holding ``octocat-evil``
  (the argument is longer than what was copied), ``"refund ch_3Evil99"`` does.
- Numbers inside a longer string are not compared as numbers (only as text or as
  account numbers when they have 6 or more digits); ``1e3`` is not a number; the
  ambiguous ``1.000`` and ``1,000`` are read the US way (one, and one thousand).
- Digits are ASCII (after NFKC, which maps full-width digits to ASCII); bare domains
  are ASCII (a Unicode host is found inside a URL only); an e-mail's local part is
  read at most 64 characters back from its ``@``; the path of a URL is compared as
  written (no percent-decoding), though its host still matches.
- A string value is matched on its first 64 KiB; past that :func:`TextIndex.find`
  adds an :attr:`MatchKind.UNCHECKED` hit (fail closed) when the index holds text.
- At most 64 hits are returned per value.

Invariants: ``find`` never raises on a str, int, float, Decimal, bool or None;
it returns ``()`` when nothing matches; its cost is bounded by the size of the index
(an adversarial text with many near matches is cut off after 1,000 of them and then
counts as a match, or as no match when it would clear a value); adding a text takes
time linear in its size, whatever the text (untrusted text is attacker-written).
"""

from __future__ import annotations

import json
import math
import operator
import re
import unicodedata
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal
from enum import StrEnum
from itertools import accumulate, count
from typing import cast
from urllib.parse import urlsplit

__all__ = ["Hit", "MatchKind", "TextIndex", "Value", "normalise"]

Value = str | int | float | Decimal | bool | None
"""What a tool argument's leaf can be."""

MAX_VALUE_CHARS = 64 * 1024
"""A string value is matched on this many characters at most."""
MAX_HITS = 64
"""At most this many hits per value: one is enough to taint, the rest are evidence."""
EXCERPT_CHARS = 80
UNCHECKED_SOURCE = "(unchecked)"
_MIN_TEXT_ALNUM = 4
_MIN_SQUASH_ALNUM = 8
_MAX_NEAR_MISSES = 1000
_MAX_INT_BITS = 13_000  # about 3,900 digits: below Python's int-to-str limit of 4,300

# Families of comparisons; a probe of one family only ever meets atoms of the same one.
_TEXT, _SQUASH, _URL, _HOST, _EMAIL, _IBAN, _ACCOUNT, _IDENT, _NUMBER, _NUMPART = (
    "text",
    "squash",
    "url",
    "host",
    "email",
    "iban",
    "account",
    "ident",
    "number",
    "numpart",  # a number that is part of a date, a time or an id: matches, never clears
)


class MatchKind(StrEnum):
    """How a value was found in a text (see the module docstring)."""

    EXACT = "exact"
    NORMALISED = "normalised"
    SUBSTRING = "substring"
    EMBEDDED = "embedded"
    NUMBER = "number"
    URL = "url"
    EMAIL = "email"
    ACCOUNT = "account"
    UNCHECKED = "unchecked"
    """The value was too large to check completely; counted as a match (fail closed)."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One source where a value appears: its name, how it matched, and an excerpt
    (at most 80 characters of the source text around the match, control characters
    replaced by spaces, so it is safe to show in an error message)."""

    source: str
    kind: MatchKind
    excerpt: str


# Invisible characters an attacker can slip inside a value to split it: every format
# character (Cf, Unicode 14) plus the other default-ignorable code points (variation
# selectors, fillers, tags). Listed, not computed, to keep the import cheap; a test
# checks the list against unicodedata.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u115f-\u1160"
    "\u17b4-\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e007f\U000e0100-\U000e01ef]+"
)
_ALNUM_RUN = re.compile(r"[^\W_]+")  # \w without "_" is exactly str.isalnum
_CONTROL = {c: " " for c in [*range(32), 127]}


def _clean(text: str) -> str:
    """Invisible characters removed, then NFKC (full-width, ligatures, compatibility
    digits folded). Case and punctuation are kept: atoms are found in this form."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))


def _tokens(clean: str) -> list[str]:
    folded = clean.casefold()
    if not folded.isascii():
        folded = unicodedata.normalize("NFKC", folded)
    return _ALNUM_RUN.findall(folded)


def normalise(text: str) -> str:
    """``text`` in the form used for comparison: NFKC, casefolded, zero-width and other
    format characters removed, every run of non-alphanumerics turned into one space,
    trimmed. ``normalise("  Acct-123_456\\u200b!") == "acct 123 456"``."""
    return " ".join(_tokens(_clean(text)))


# -- atoms ----------------------------------------------------------------------------

# Atoms are found from a literal anchor ("://", "@", ".") that the regex engine can
# jump to, then expanded backwards: a pattern opening with a character class would be
# tried at every position of a megabyte of text (ingestion is 3-4x faster this way).
_URL_BODY = re.compile(r"://[^\s<>\"'`{}|\\^]*")
_URL_SCHEME = re.compile(r"(?<![\w+.-])(?:https?|wss?|ftp)\Z", re.IGNORECASE)
_URL_TRAILING = ".,;:!?)]}'\"*"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
_DOMAIN_RE = re.compile(
    r"(?<![\w@.-])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})"
    r"(?![\w@-]|\.[a-z0-9])",
    re.IGNORECASE,
)
_EMAIL_DOMAIN = re.compile(r"@(?:[\w-]+\.)+[\w-]{2,}(?![\w-])")
_EMAIL_LOCAL = re.compile(r"(?<![\w.+-])[\w.+-]+\Z")
_DOT_LETTER = re.compile(r"\.(?=[A-Za-z])")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")
_HOST_RUN = re.compile(r"[A-Za-z0-9.-]*")
_IBAN_RE = re.compile(
    r"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}"
    r"(?:[A-Za-z0-9]{11,30}|(?: [A-Za-z0-9]{4}){2,7}(?: [A-Za-z0-9]{1,4})?)(?![A-Za-z0-9])"
)
_ACCOUNT_RE = re.compile(r"[0-9](?<![0-9][0-9])(?:[ -]?[0-9]){5,}+(?![0-9])")
# A word of 6+ characters holding a digit or an underscore; letters are checked after.
_IDENT_RE = re.compile(r"(?<!\w)(?=[^\W\d_]*+[\d_])\w{6,}+(?!\w)")
_NUM_BODY = (
    r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?"  # 1,000 and 1,000.00
    r"|[0-9]{1,3}(?:\.[0-9]{3})+,[0-9]+"  # 1.000,00 (European: both separators)
    r"|[0-9]{1,3}(?:\.[0-9]{3}){2,}"  # 1.000.000 (two dots cannot be a decimal point)
    r"|[0-9]{1,3}(?: [0-9]{3})+(?:[.,][0-9]+)?"  # 1 000 and 1 000,50
    r"|[0-9]+(?:[.,][0-9]+)?"  # 1000, 1000.50 and 12,5
)
# The same literals for the scan of a text, opening with a digit (the engine jumps to
# digits) and, once past it, checking what preceded it.
_NUMBER_RE = re.compile(
    r"[0-9](?<![\w.,][0-9])(?:"
    r"[0-9]{0,2}(?:,[0-9]{3})+(?:\.[0-9]+)?"
    r"|[0-9]{0,2}(?:\.[0-9]{3})+,[0-9]+"
    r"|[0-9]{0,2}(?:\.[0-9]{3}){2,}"
    r"|[0-9]{0,2}(?: [0-9]{3})+(?:[.,][0-9]+)?"
    r"|[0-9]*(?:[.,][0-9]+)?"
    r")(?!\w|[.,][0-9])"
)
_NUMBER_FULL = re.compile(_NUM_BODY)
_GROUPED_COMMAS = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+")
# Exponent and precision wide enough that scaling by 1/100 is exact and never traps,
# whatever the caller did to the thread's decimal context.
_DECIMALS = Context(prec=MAX_VALUE_CHARS + 16, Emax=999_999_999, Emin=-999_999_999, traps=[])


def _to_decimal(literal: str) -> Decimal:
    """The value of a literal matched by ``_NUM_BODY``: spaces group, the last of "."
    and "," is the decimal separator when both occur, a lone comma followed by three
    digits groups thousands and otherwise is a decimal comma."""
    s = literal.replace(" ", "")
    if "," in s and "." in s:
        if s.rfind(",") > s.rfind("."):
            s = s.replace(".", "").replace(",", ".")
        else:
            s = s.replace(",", "")
    elif "," in s:
        s = s.replace(",", "") if _GROUPED_COMMAS.fullmatch(s) else s.replace(",", ".")
    elif s.count(".") > 1:
        s = s.replace(".", "")
    return Decimal(s).copy_abs()


def _url_key(url: str) -> tuple[str, str] | None:
    """(normalised URL, host), or None when ``url`` has no usable host."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # a bad port or bracket: not a URL we can compare
        return None
    if not host:
        return None
    scheme = parts.scheme.lower()
    host = _idna(host.rstrip("."))
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        netloc = f"{userinfo}@{netloc}"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}{query}", host


def _idna(host: str) -> str:
    """A Unicode host in its ASCII (punycode) form, so both spellings compare equal."""
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:  # not a valid IDNA label: compare it as written
        return host


def _email_key(address: str) -> str:
    local, _, domain = address.casefold().rpartition("@")
    untagged = local.split("+", 1)[0]
    return f"{untagged or local}@{domain}"


def _atoms(clean: str, *, numbers: bool) -> list[tuple[str, Hashable, int, int]]:
    """Every atom in ``clean`` as (family, key, start, end)."""
    found: list[tuple[str, Hashable, int, int]] = []
    pos = 0
    # str.find for the anchor, not a regex search: a body is matched only after a
    # scheme, else ".https://" repeated would rescan the rest of the text each time.
    while (at := clean.find("://", pos)) >= 0:
        scheme = _URL_SCHEME.search(clean, max(0, at - 5), at)
        if scheme is None:
            pos = at + 1
            continue
        m = cast(re.Match[str], _URL_BODY.match(clean, at))  # "://" always matches
        pos = max(m.end(), at + 1)
        start = scheme.start()
        text = clean[start : m.end()].rstrip(_URL_TRAILING)
        keys = _url_key(text)
        if keys is not None:
            found.append((_URL, keys[0], start, start + len(text)))
            found.append((_HOST, keys[1], start, start + len(text)))
    run_end = -1
    for m in _DOT_LETTER.finditer(clean):
        if m.start() < run_end:
            continue  # a later dot of a run already tried: a domain can only start a run
        start = m.start()
        while start > 0 and clean[start - 1] in _HOST_CHARS:  # each run walked once
            start -= 1
        run_end = cast(re.Match[str], _HOST_RUN.match(clean, m.start())).end()  # "*": matches
        domain = _DOMAIN_RE.match(clean, start)
        if domain is not None:
            found.append((_HOST, domain.group().lower(), domain.start(), domain.end()))
    for m in _EMAIL_DOMAIN.finditer(clean):
        local = _EMAIL_LOCAL.search(clean, max(0, m.start() - 64), m.start())
        if local is not None:
            address = clean[local.start() : m.end()]
            found.append((_EMAIL, _email_key(address), local.start(), m.end()))
    for m in _IBAN_RE.finditer(clean):
        iban = m.group().replace(" ", "").upper()
        if any(c.isdigit() for c in iban[4:]):
            found.append((_IBAN, iban, m.start(), m.end()))
    for m in _ACCOUNT_RE.finditer(clean):
        digits = m.group().replace(" ", "").replace("-", "")
        found.append((_ACCOUNT, digits, m.start(), m.end()))
    for m in _IDENT_RE.finditer(clean):
        word = m.group()
        if "_" in word or not word.isdigit():
            found.append((_IDENT, word.casefold(), m.start(), m.end()))
    if numbers:
        for m in _NUMBER_RE.finditer(clean):
            literal = m.group()
            family = _NUMPART if _in_compound(clean, m.start(), m.end()) else _NUMBER
            found.append((family, _to_decimal(literal), m.start(), m.end()))
            if " " in literal:  # "ids 100 200" is a list as much as a grouped number
                offset = m.start()
                for part in literal.split(" "):
                    found.append((family, _to_decimal(part), offset, offset + len(part)))
                    offset += len(part) + 1
    return found


_JOINERS = "-/:#"


def _in_compound(clean: str, start: int, end: int) -> bool:
    """Whether the number at ``clean[start:end]`` is part of a date, a time, a version
    or an id (``2026-11-29``, ``10:30``, ``29/11``, ``#2026``, ``T-2026``): joined to a
    letter or digit by ``-``, ``/``, ``:`` or ``#``. Such a number still taints (the
    untrusted text holds it) but never clears: "Today is 2026-11-29" says nothing
    about an amount of 2026."""
    before = clean[start - 1] if start > 0 else ""
    if before and before in _JOINERS and (before == "#" or clean[start - 2 : start - 1].isalnum()):
        return True
    return end + 1 < len(clean) and clean[end] in _JOINERS and clean[end + 1].isalnum()


# -- JSON texts: what a tool or an API answers --------------------------------------


def _json_leaves(text: str) -> list[str] | None:
    """The decoded strings (object keys included) of ``text`` when it is a JSON object
    or array whose spelling differs from them (it holds a backslash escape: ``\\n``,
    ``\\u00fc``); None otherwise. Iterative: nesting depth costs no stack."""
    s = text.strip()
    if len(s) < 2 or "\\" not in s or (s[0], s[-1]) not in (("{", "}"), ("[", "]")):
        return None
    try:
        decoded = json.loads(s)
    except (ValueError, RecursionError):
        return None
    leaves: list[str] = []
    stack: list[object] = [decoded]
    while stack:  # the strings are no longer than the text: no cap needed
        item = stack.pop()
        if isinstance(item, str):
            leaves.append(item)
        elif isinstance(item, dict):
            for key, sub in reversed(item.items()):
                stack.append(sub)
                stack.append(key)
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return leaves


def _with_json_leaves(text: str) -> str:
    """``text``, followed by its decoded strings when it is a JSON document with
    escapes (:func:`_json_leaves`): what an agent copies is the decoded value, and
    ``"...:\\noctocat-evil"`` spells ``noctocat`` where the value says ``octocat``."""
    leaves = _json_leaves(text)
    return text if not leaves else "\n".join((text, *leaves))


# -- probes: what a value is compared as ----------------------------------------------


@dataclass(frozen=True, slots=True)
class _Probe:
    """One comparison derived from a value. ``kind`` is what a hit reports (text and
    squash probes refine it per hit); ``raw`` is the cleaned value, for EXACT."""

    family: str
    key: Hashable
    kind: MatchKind
    raw: str = ""


def _number_probe(d: Decimal, digits: str | None) -> tuple[_Probe, ...]:
    if not d.is_finite():
        return ()
    d = d.copy_abs()
    if d < 10 and d == d.to_integral_value(context=_DECIMALS):
        return ()  # single-digit integers are everywhere: documented blind spot
    if digits is not None and len(digits) < 6:
        digits = None
    return (_Probe(_NUMBER, (d, digits), MatchKind.NUMBER),)


def _integral_digits(d: Decimal) -> str | None:
    if not d.is_finite():  # comparing a signalling NaN would raise
        return None
    d = d.copy_abs()
    if d.adjusted() >= 64 or d != d.to_integral_value(context=_DECIMALS):
        return None
    return str(int(d))


def _number_literal(clean: str) -> str | None:
    """The literal of a string that is a single number, with an optional sign and
    currency symbol (``"-$1,000.00"``, ``"1 000 €"``); None otherwise."""
    s = clean.strip()
    if s and s[0] in "+-":
        s = s[1:].strip()
    if s and unicodedata.category(s[0]) == "Sc":
        s = s[1:].strip()
    if s and unicodedata.category(s[-1]) == "Sc":
        s = s[:-1].strip()
    if s and s[0] in "+-":  # "$-5"
        s = s[1:]
    return s if _NUMBER_FULL.fullmatch(s) else None


def _probes(value: Value) -> tuple[tuple[_Probe, ...], bool]:
    """The comparisons for ``value``, and whether it was too large to check whole."""
    if value is None or isinstance(value, bool):
        return (), False
    if isinstance(value, int):
        if value.bit_length() > _MAX_INT_BITS:
            return (), True
        digits = str(abs(value))
        return _number_probe(Decimal(value), digits), False
    if isinstance(value, float):
        if not math.isfinite(value):
            return (), False
        d = Decimal(repr(value))
        return _number_probe(d, _integral_digits(d)), False
    if isinstance(value, Decimal):
        return _number_probe(value, _integral_digits(value)), False
    if not isinstance(value, str):  # an untyped caller's list or bytes: nothing to compare
        return (), False  # type: ignore[unreachable]
    truncated = len(value) > MAX_VALUE_CHARS
    clean = _clean(value[:MAX_VALUE_CHARS])
    literal = _number_literal(clean)
    if literal is not None:
        number = _to_decimal(literal)
        # "0012345678" keeps its leading zeros as an account number; "1,000.00" is 1000.
        plain = literal.replace(" ", "")
        account = plain if plain.isdigit() else _integral_digits(number)
        return _number_probe(number, account), truncated
    return _string_probes(clean), truncated


_WRAPPERS = " \t\r\n\"'`<>()[]{}.,;:"


def _string_probes(clean: str) -> tuple[_Probe, ...]:
    whole: list[_Probe] = []
    embedded: list[_Probe] = []
    stripped = clean.strip(_WRAPPERS)
    lo = clean.find(stripped) if stripped else 0
    hi = lo + len(stripped)
    kinds = {
        _URL: MatchKind.URL,
        _HOST: MatchKind.URL,
        _EMAIL: MatchKind.EMAIL,
        _IBAN: MatchKind.ACCOUNT,
        _ACCOUNT: MatchKind.ACCOUNT,
        _IDENT: MatchKind.ACCOUNT,
    }
    seen: set[tuple[str, Hashable]] = set()
    for family, key, start, end in _atoms(clean, numbers=False):
        if (family, key) in seen:
            continue
        seen.add((family, key))
        if start <= lo and end >= hi:
            whole.append(_Probe(family, key, kinds[family]))
        else:
            embedded.append(_Probe(family, key, MatchKind.EMBEDDED))
    tokens = _tokens(clean)
    squashed = "".join(tokens)
    text: list[_Probe] = []
    if len(squashed) >= _MIN_SQUASH_ALNUM:
        text.append(_Probe(_SQUASH, squashed, MatchKind.SUBSTRING, stripped))
    elif len(squashed) >= _MIN_TEXT_ALNUM:
        text.append(_Probe(_TEXT, " ".join(tokens), MatchKind.SUBSTRING, stripped))
    return (*whole, *text, *embedded)


# -- the index ------------------------------------------------------------------------


class _Text:
    """One added text in every form a comparison needs."""

    __slots__ = (
        "atoms",
        "clean",
        "norm",
        "norm_base",
        "size",
        "source",
        "squash_base",
        "squashed",
        "starts",
    )

    def __init__(self, text: str, source: str, size: int) -> None:
        self.source = source
        self.size = size
        self.norm_base = self.squash_base = 0  # where its regions start in the blobs
        self.clean = _clean(text)
        tokens = _tokens(self.clean)
        self.norm = " ".join(tokens)
        self.squashed = "".join(tokens)
        # Where each token starts in the squashed text: squashed matches must start and
        # end on these, and a squashed offset maps back to the normalised text with them.
        self.starts = array("I", accumulate(map(len, tokens[:-1]), initial=0) if tokens else ())
        self.atoms = [(f, k, s) for f, k, s, _ in _atoms(self.clean, numbers=True)]


def _grams(text: _Text) -> set[str | tuple[str, int]]:
    """What a match must start with, at some token start: the next 8 squashed
    characters (squash probes) or the next 4 normalised ones (text probes); lengths
    differ, so both kinds share one filter. Each gram goes in twice: alone (one test
    rules out most values) and with the chunk of the blob where its token starts (a
    scan then skips the chunks that cannot hold a match)."""
    # map() over slices keeps the loops in C: this runs over every token of every text.
    starts = text.starts
    squash = list(map(text.squashed.__getitem__, map(slice, starts, map(_add8, starts))))
    squash_chunks = map(_chunk_of, map(text.squash_base.__add__, starts))
    norm_starts = list(map(operator.add, starts, count()))
    norm = list(map(text.norm.__getitem__, map(slice, norm_starts, map(_add4, norm_starts))))
    norm_chunks = map(_chunk_of, map((text.norm_base + 1).__add__, norm_starts))
    grams: set[str | tuple[str, int]] = set(squash)
    grams.update(norm)
    grams.update(zip(squash, squash_chunks, strict=True))
    grams.update(zip(norm, norm_chunks, strict=True))
    return grams


_CHUNK_BITS = 16  # 64 KiB of blob per chunk: a 1 MB ledger has 16 of them
_chunk_of = _CHUNK_BITS.__rrshift__  # position >> _CHUNK_BITS
_add8 = _MIN_SQUASH_ALNUM.__add__
_add4 = _MIN_TEXT_ALNUM.__add__


class _Filter:
    """A Bloom filter (two bits per gram) over the grams of every text: most values
    appear nowhere, and this proves it without scanning the whole text (issue 9)."""

    __slots__ = ("bits", "count", "mask")

    def __init__(self, capacity: int) -> None:
        # At least 16 bits per gram: at most 1.4% false positives when full.
        size = 1 << max(16, (capacity * 16 - 1).bit_length())
        self.bits = bytearray(size >> 3)
        self.mask = size - 1
        self.count = 0

    def full(self, extra: int) -> bool:
        return (self.count + extra) * 16 > self.mask + 1

    def add(self, grams: set[str | tuple[str, int]]) -> None:
        bits, mask = self.bits, self.mask
        for h in map(hash, grams):
            i, j = h & mask, (h >> 32) & mask
            bits[i >> 3] |= 1 << (i & 7)
            bits[j >> 3] |= 1 << (j & 7)
        self.count += len(grams)

    def __contains__(self, gram: str | tuple[str, int]) -> bool:
        h = hash(gram)
        i, j = h & self.mask, (h >> 32) & self.mask
        return bool(self.bits[i >> 3] & (1 << (i & 7)) and self.bits[j >> 3] & (1 << (j & 7)))


class _Segment:
    """A filter over consecutive texts, from the chunks where the first one starts.
    A full filter is not rebuilt: a new segment, twice as large, takes the next
    texts (rebuilding would hash every gram of every earlier text again)."""

    __slots__ = ("filter", "norm_low", "squash_low")

    def __init__(self, capacity: int, text: _Text) -> None:
        self.filter = _Filter(capacity)
        self.norm_low = _chunk_of(text.norm_base)
        self.squash_low = _chunk_of(text.squash_base)


def _utf8_size(text: str) -> int:
    # surrogatepass: a lone surrogate must be counted, not raise.
    return len(text.encode("utf-8", "surrogatepass"))


def _excerpt(text: str, start: int) -> str:
    begin = max(0, min(start - 20, len(text) - EXCERPT_CHARS))
    return text[begin : begin + EXCERPT_CHARS].translate(_CONTROL)


class TextIndex:
    """Texts of one trust class with their sources; bounded by ``max_bytes`` (the
    UTF-8 size of the texts as given). Not thread-safe: its owners lock around it.

    The normalised texts are kept concatenated (one ``str.find`` per value, then the
    hit offset is mapped back to its source) and atoms in a dict for O(1) look-ups.
    Bloom filters of what a match can start with, by 64 KiB chunk of the
    concatenation, rule out most values without a scan and limit the scan of the
    others to the chunks that may hold them. The forms kept (cleaned, normalised,
    squashed, concatenated, atoms, filters) take about five times the size of the
    text in memory.
    """

    def __init__(self, *, max_bytes: int = 8 * 1024 * 1024) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, not {max_bytes}")
        self._max_bytes = max_bytes
        self._size = 0
        self._texts: list[_Text] = []
        self._atoms: dict[tuple[str, Hashable], list[tuple[_Text, int]]] = {}
        self._segments: list[_Segment] = []
        self._norm_len = 0  # the blobs' lengths once joined: where the next text goes
        self._squash_len = 0
        self._dirty = False
        self._norm_blob = ""
        self._norm_starts: list[int] = []
        self._squash_blob = ""
        self._squash_starts: list[int] = []

    def __len__(self) -> int:
        """The number of texts held."""
        return len(self._texts)

    @property
    def size_bytes(self) -> int:
        """The UTF-8 size of the texts held."""
        return self._size

    def add(self, text: str, source: str) -> bool:
        """Add ``text`` read from ``source``; False (and nothing added) when it would
        take the index past ``max_bytes``. A JSON document with escapes is added with
        its decoded strings after it (counted in its size)."""
        return self._add_prepared(_with_json_leaves(text), source)

    def _add_prepared(self, text: str, source: str) -> bool:
        """:meth:`add` of a text already passed through ``_with_json_leaves``."""
        if len(text) > self._max_bytes - self._size:  # never smaller in UTF-8: no need to encode
            return False
        size = _utf8_size(text)
        if self._size + size > self._max_bytes:
            return False
        self._add_text(_Text(text, source, size))
        return True

    def find(self, value: Value) -> tuple[Hit, ...]:
        """Every source where ``value`` (or an atom of it) appears, one hit per source
        (the first comparison that matched there); ``()`` if none. See the module
        docstring for the comparisons and their order."""
        return _find(self, None, value)

    # -- private: used by the ledger and the broker's memory --------------------------

    def _add_text(self, text: _Text) -> None:
        self._texts.append(text)
        self._size += text.size
        # Regions are joined by one "\x00"; the normalised one is " " + norm + " ".
        text.norm_base, text.squash_base = self._norm_len, self._squash_len
        self._norm_len += len(text.norm) + 3
        self._squash_len += len(text.squashed) + 1
        grams = _grams(text)
        segments = self._segments
        if not segments or segments[-1].filter.full(len(grams)):
            last = segments[-1].filter.count if segments else 0
            segments.append(_Segment(max(4096, 2 * len(grams), 2 * last), text))
        segments[-1].filter.add(grams)
        for family, key, start in text.atoms:
            entries = self._atoms.setdefault((family, key), [])
            if not entries or entries[-1][0] is not text:  # first occurrence per text
                entries.append((text, start))
        self._dirty = True

    def _drop_oldest(self, count: int, again: Sequence[int] = ()) -> None:
        """Forget the ``count`` oldest texts (the broker's memory expires them), except
        those at the positions ``again`` (ascending, among the ``count``): they move to
        the end, as if just added (the memory renewed them)."""
        dropped = self._texts[:count]
        kept = self._texts[count:] + [dropped[at] for at in again]
        self._texts, self._size, self._atoms = [], 0, {}
        self._segments = []
        self._norm_len = self._squash_len = 0
        for text in kept:
            self._add_text(text)
        self._dirty = True

    def _blobs(self) -> None:
        if not self._dirty:
            return
        # Regions are "\x00"-separated: no needle holds "\x00", so no match spans two texts.
        norm_parts = [f" {t.norm} " for t in self._texts]
        self._norm_blob = "\x00".join(norm_parts)
        self._norm_starts = list(accumulate((len(p) + 1 for p in norm_parts[:-1]), initial=0))
        squash_parts = [t.squashed for t in self._texts]
        self._squash_blob = "\x00".join(squash_parts)
        self._squash_starts = list(accumulate((len(p) + 1 for p in squash_parts[:-1]), initial=0))
        self._dirty = False

    def _lookup(
        self, probe: _Probe, limit: int, *, clearing: bool = False
    ) -> tuple[list[Hit], bool]:
        """Up to ``limit`` hits for ``probe``, and whether the scan gave up on an
        adversarial text (the last hit then stands for that text, unverified).
        ``clearing``: looking in trusted text, where a number in a date, a time or an
        id does not count."""
        if probe.family == _TEXT:
            return self._scan_text(probe, limit), False
        if probe.family == _SQUASH:
            return self._scan_squash(probe, limit)
        if probe.family == _NUMBER:
            d, digits = cast(tuple[Decimal, str | None], probe.key)
            cents = d.scaleb(-2, context=_DECIMALS)
            keys: list[tuple[tuple[str, Hashable], MatchKind]] = [
                ((_NUMBER, d), MatchKind.NUMBER),
                ((_NUMBER, cents), MatchKind.NUMBER),
            ]
            if not clearing:
                keys += [((_NUMPART, d), MatchKind.NUMBER), ((_NUMPART, cents), MatchKind.NUMBER)]
            keys.append(((_ACCOUNT, digits), MatchKind.ACCOUNT))
            hits: list[Hit] = []
            for key, kind in keys:
                hits += self._atom_hits(key, kind, limit - len(hits))
            return hits, False
        return self._atom_hits((probe.family, probe.key), probe.kind, limit), False

    def _atom_hits(self, key: tuple[str, Hashable], kind: MatchKind, limit: int) -> list[Hit]:
        entries = self._atoms.get(key, ())
        return [Hit(t.source, kind, _excerpt(t.clean, start)) for t, start in entries[:limit]]

    def _region_kind(self, text: _Text, whole: bool, probe: _Probe) -> MatchKind:
        if not whole:
            return MatchKind.SUBSTRING
        return MatchKind.EXACT if text.clean.strip() == probe.raw else MatchKind.NORMALISED

    def _chunks(self, gram: str, *, norm: bool) -> list[int]:
        """The chunks of the normalised (or squashed) blob where a match starting with
        ``gram`` may start; a filter has no false negatives, so no other chunk holds
        one. Ascending."""
        segments = self._segments
        found: dict[int, None] = {}
        for n, segment in enumerate(segments):
            if gram not in segment.filter:
                continue
            if norm:
                low = segment.norm_low
                high = segments[n + 1].norm_low if n + 1 < len(segments) else None
            else:
                low = segment.squash_low
                high = segments[n + 1].squash_low if n + 1 < len(segments) else None
            if high is None:
                high = _chunk_of(self._norm_len if norm else self._squash_len)
            for chunk in range(low, high + 1):
                if (gram, chunk) in segment.filter:
                    found[chunk] = None
        return sorted(found)

    def _scan_text(self, probe: _Probe, limit: int) -> list[Hit]:
        key = str(probe.key)
        chunks = self._chunks(key[:_MIN_TEXT_ALNUM], norm=True)
        if not chunks:
            return []
        self._blobs()
        blob, starts = self._norm_blob, self._norm_starts
        needle = f" {key} "
        hits: list[Hit] = []
        pos = 0
        for chunk in chunks:
            # The token (after the needle's leading space) must start in this chunk.
            low, high = (chunk << _CHUNK_BITS) - 1, ((chunk + 1) << _CHUNK_BITS) - 1
            pos = max(pos, low)
            while pos < high and len(hits) < limit:
                p = blob.find(needle, pos, high + len(needle) - 1)
                if p < 0:
                    break
                i = bisect_right(starts, p) - 1
                text = self._texts[i]
                kind = self._region_kind(text, text.norm == key, probe)
                hits.append(Hit(text.source, kind, _excerpt(text.norm, p - starts[i])))
                pos = starts[i + 1] if i + 1 < len(starts) else len(blob)
        return hits

    def _scan_squash(self, probe: _Probe, limit: int) -> tuple[list[Hit], bool]:
        key = str(probe.key)
        chunks = self._chunks(key[:_MIN_SQUASH_ALNUM], norm=False)
        if not chunks:
            return [], False
        self._blobs()
        blob, starts = self._squash_blob, self._squash_starts
        hits: list[Hit] = []
        pos, misses = 0, 0
        for chunk in chunks:
            low, high = chunk << _CHUNK_BITS, (chunk + 1) << _CHUNK_BITS
            pos = max(pos, low)
            while pos < high and len(hits) < limit:
                p = blob.find(key, pos, high + len(key) - 1)  # a match starting before high
                if p < 0:
                    break
                i = bisect_right(starts, p) - 1
                text = self._texts[i]
                rel, end, tokens = p - starts[i], p - starts[i] + len(key), text.starts
                k = bisect_right(tokens, rel) - 1
                e = bisect_left(tokens, end)
                next_region = starts[i + 1] if i + 1 < len(starts) else len(blob)
                on_end = end == len(text.squashed) or (e < len(tokens) and tokens[e] == end)
                if tokens[k] == rel and on_end:
                    kind = self._region_kind(text, text.squashed == key, probe)
                    hits.append(Hit(text.source, kind, _excerpt(text.norm, rel + k)))
                    pos = next_region
                    continue
                misses += 1
                if misses > _MAX_NEAR_MISSES:
                    note = f"too many near matches to check ({_MAX_NEAR_MISSES})"
                    hits.append(Hit(text.source, MatchKind.SUBSTRING, note))
                    return hits, True
                # A match can only start where a token starts.
                pos = starts[i] + tokens[k + 1] if k + 1 < len(tokens) else next_region
        return hits, False

    def _maybe(self, probe: _Probe) -> bool:
        """False when ``probe`` certainly matches nothing here (no scan needed)."""
        key = probe.key
        if probe.family == _TEXT:
            return bool(self._chunks(str(key)[:_MIN_TEXT_ALNUM], norm=True))
        if probe.family == _SQUASH:
            return bool(self._chunks(str(key)[:_MIN_SQUASH_ALNUM], norm=False))
        if probe.family == _NUMBER:
            d, digits = cast(tuple[Decimal, str | None], key)
            cents = d.scaleb(-2, context=_DECIMALS)
            atoms = self._atoms
            return (
                (_NUMBER, d) in atoms
                or (_NUMBER, cents) in atoms
                or (_NUMPART, d) in atoms
                or (_NUMPART, cents) in atoms
                or (_ACCOUNT, digits) in atoms
            )
        return (probe.family, key) in self._atoms

    def _contains(self, probe: _Probe) -> bool:
        """Whether ``probe`` certainly matches (used to clear: unsure means no)."""
        hits, undecided = self._lookup(probe, 1, clearing=True)
        return bool(hits) and not undecided


def _unchecked(value: Value) -> Hit:
    if isinstance(value, str):
        note = f"value of {len(value)} characters: only the first {MAX_VALUE_CHARS} checked"
    else:
        note = "number too large to check"
    return Hit(UNCHECKED_SOURCE, MatchKind.UNCHECKED, note)


_Probes = tuple[tuple[_Probe, ...], bool]


def _find(
    untrusted: TextIndex,
    trusted: TextIndex | None,
    value: Value,
    probes_of_value: _Probes | None = None,
) -> tuple[Hit, ...]:
    """Hits for ``value`` in ``untrusted`` whose comparison does not also match in
    ``trusted`` (same probe, same semantics), one per source, in probe order.
    ``probes_of_value``: ``_probes(value)`` when the caller already has it."""
    if not untrusted._texts:
        return ()
    probes, truncated = probes_of_value or _probes(value)
    hits: list[Hit] = []
    seen: set[str] = set()
    whole_atom_found = False
    for probe in probes:
        if whole_atom_found and probe.family in (_TEXT, _SQUASH):
            # The value is a URL, e-mail, identifier...: the atom look-up already found
            # every source holding it; a scan of the whole text would add nothing.
            continue
        # Cheapest first: most values appear nowhere, and the filter proves it; then
        # clear against trusted text (small) before scanning untrusted text (large).
        if not untrusted._maybe(probe):
            continue
        if trusted is not None and trusted._contains(probe):
            continue
        found, _ = untrusted._lookup(probe, MAX_HITS)
        if found and probe.family not in (_TEXT, _SQUASH) and probe.kind != MatchKind.EMBEDDED:
            whole_atom_found = True
        for hit in found:
            if hit.source not in seen and len(hits) < MAX_HITS:
                seen.add(hit.source)
                hits.append(hit)
    if truncated:
        hits.append(_unchecked(value))
    return tuple(hits)


def _appears(index: TextIndex, value: Value, probes_of_value: _Probes | None = None) -> bool:
    """Whether any comparison of ``value`` certainly matches in ``index``."""
    if not index._texts:
        return False
    probes, _ = probes_of_value or _probes(value)
    return any(index._maybe(p) and index._contains(p) for p in probes)
