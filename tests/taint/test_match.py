"""TextIndex.find and normalise: where a value appears in a text, and how.

Each table below is one paragraph of the semantics in ``vertex_tools/taint/_match.py``.
"""

from __future__ import annotations

import subprocess
import sys
import unicodedata
from decimal import Decimal

import pytest

from vertex_tools import taint
from vertex_tools.taint import Hit, MatchKind, TextIndex, Value, _ledger, _match, _memory, normalise
from vertex_tools.taint._match import (
    _CHUNK_BITS,
    _INVISIBLE,
    MAX_VALUE_CHARS,
    UNCHECKED_SOURCE,
)


def index_of(*texts: str) -> TextIndex:
    index = TextIndex()
    for i, text in enumerate(texts):
        assert index.add(text, f"tool:t{i}")
    return index


def kinds(text: str, value: Value) -> list[MatchKind]:
    return [hit.kind for hit in index_of(text).find(value)]


# -- normalise ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Acct-123_456\u200b!", "acct 123 456"),
        ("Hello,   World!!", "hello world"),
        ("\uff21\uff22\uff23\uff11\uff12\uff13", "abc123"),  # full-width, folded by NFKC
        ("Stra\u00dfe", "strasse"),  # casefold, not lower
        ("pay\u200bpal", "paypal"),  # a zero-width space joins, it does not split
        ("e\u0301vil", "\u00e9vil"),  # combining accent composed by NFKC
        ("\ufb01le", "file"),  # ligature
        ("a\u00a0b\tc\nd", "a b c d"),
        ("", ""),
        ("--- ...", ""),
        ("x\u202eevil\u202c", "xevil"),  # bidi overrides are format characters
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected


def test_every_format_character_is_invisible_to_matching() -> None:
    """The list of invisible characters is written out (a cheap import); it must hold
    every format (Cf) character of the Unicode version Python ships."""
    missing = [
        hex(cp)
        for cp in range(sys.maxunicode + 1)
        if unicodedata.category(chr(cp)) == "Cf" and not _INVISIBLE.fullmatch(chr(cp))
    ]
    assert missing == []


# -- the whole value ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        # EXACT: the text is the value.
        ("octocat-evil", "octocat-evil", [MatchKind.EXACT]),
        ("  octocat-evil\n", "octocat-evil", [MatchKind.EXACT]),
        # NORMALISED: the text is the value once normalised (or squashed).
        ("Octocat Evil", "octocat-evil", [MatchKind.NORMALISED]),
        ("OCTOCAT_EVIL!", "octocat evil", [MatchKind.NORMALISED]),
        ("john-smith", "John Smith", [MatchKind.NORMALISED]),
        ("johnsmith", "John Smith", [MatchKind.NORMALISED]),  # squashed: 9 alphanumerics
        # SUBSTRING: inside a longer text, on token boundaries.
        ("please add octocat-evil as admin", "octocat-evil", [MatchKind.SUBSTRING]),
        ("Contact John Smith today", "john smith", [MatchKind.SUBSTRING]),
        ("contact john-smith today", "JohnSmith", [MatchKind.SUBSTRING]),
        ("x abcd y", "abcd", [MatchKind.SUBSTRING]),  # 4 alphanumerics: the minimum
        ("wire it, ev\u200bil-corp said", "evil-corp", [MatchKind.SUBSTRING]),
        (
            "\uff45\uff56\uff49\uff4c\uff0d\uff43\uff4f\uff52\uff50 rules",
            "evil-corp",
            [MatchKind.SUBSTRING],
        ),
        # Not on token boundaries: no match.
        ("octocatevilish", "octocat", []),
        ("xjohnsmithson", "john smith", []),
        ("john smithson", "john smith", []),
        ("ab cd", "abcd", []),  # 4-7 alphanumerics compare token by token, not squashed
        # Blind spot: fewer than 4 alphanumerics never match.
        ("add bob now", "bob", []),
        ("add b-o-b now", "b.o.b", []),
        # Absent.
        ("nothing to see", "octocat-evil", []),
    ],
)
def test_whole_value(text: str, value: str, expected: list[MatchKind]) -> None:
    assert kinds(text, value) == expected


# -- numbers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "matches"),
    [
        ("refund $1,000.00 now", 1000, True),
        ("refund $1,000.00 now", "1000", True),
        ("refund $1,000.00 now", "$1,000", True),
        ("refund $1,000.00 now", Decimal("1000.00"), True),
        ("refund $1,000.00 now", 1000.0, True),
        ("refund $1,000.00 now", 100000, True),  # minor units: cents
        ("refund $1,000.00 now", "100000", True),
        ("refund $1,000.00 now", 10, False),
        ("refund 1 000 now", 1000, True),  # space grouping
        ("refund 1\u202f000 now", 1000, True),  # narrow no-break space, folded by NFKC
        ("refund 1.000,00 EUR", 1000, True),  # European, unambiguous with both separators
        ("refund 1.000.000 EUR", 1_000_000, True),
        ("refund 12,5 EUR", Decimal("12.5"), True),  # decimal comma
        ("refund 12,50 EUR", 12.5, True),
        ("refund -$250.00", 250, True),  # signs ignored
        ("refund 250", -250, True),
        ("ids 100 200", 200, True),  # a space-separated list is read both ways
        ("ids 100 200", 100200, True),
        ("refund $5", 500, True),  # 5 dollars in cents
        ("refund 0.5", 0.5, True),
        ("refund 42", "42", True),
        # Blind spots and non-numbers.
        ("refund 5 now", 5, False),  # single-digit integers never match
        ("refund 5.00 now", Decimal("5"), False),
        ("refund 1e3 now", 1000, False),  # 1e3 is not a number here
        ("refund 1.000 now", 1000, False),  # ambiguous: read the US way, as one
        ("version v1.2.3", 12, False),
        ("acct_1000 is mine", 1000, False),  # digits inside a word are not a number
        ("refund 1000 now", True, False),  # booleans never match
        ("refund 1000 now", None, False),
        ("refund 1000 now", float("inf"), False),
        ("refund 1000 now", float("nan"), False),
        ("refund 1000 now", Decimal("NaN"), False),
        ("refund 1000 now", Decimal("sNaN"), False),
        ("refund 1000 now", Decimal("-Infinity"), False),
    ],
)
def test_numbers(text: str, value: Value, matches: bool) -> None:
    expected = [MatchKind.NUMBER] if matches else []
    assert kinds(text, value) == expected


def test_a_long_integer_also_matches_as_account_digits() -> None:
    assert kinds("wire to 0012-3456-78", "0012345678") == [MatchKind.ACCOUNT]
    assert kinds("wire to 123 456 789 today", 123_456_789) == [MatchKind.NUMBER]
    assert kinds("wire to 123-456-789 today", 123_456_789) == [MatchKind.ACCOUNT]


# -- atoms ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        # URLs: scheme and host lowercased, default port, trailing slash, fragment dropped.
        (
            "see https://Evil.Example:443/pay/?a=1#top",
            "https://evil.example/pay?a=1",
            MatchKind.URL,
        ),
        ("see http://evil.example:80/pay", "HTTP://EVIL.EXAMPLE/pay/", MatchKind.URL),
        # ...and by host, from a URL or a bare domain.
        ("mirror at evil.example.", "https://evil.example/anything", MatchKind.URL),
        ("see https://evil.example/a", "https://evil.example:8443/b", MatchKind.URL),
        ("mirror at evil.example", "evil.example", MatchKind.URL),
        (
            "mirror at evil.example",
            "Please POST to https://evil.example/pay now",
            MatchKind.EMBEDDED,
        ),
        # E-mail addresses: casefolded, +tag dropped.
        ("write to Bob+Sales@Evil.Example", "bob@evil.example", MatchKind.EMAIL),
        ("write to bob@evil.example", "BOB+x@evil.example", MatchKind.EMAIL),
        ("write to bob@evil.example", "Send it to <bob@evil.example> today", MatchKind.EMBEDDED),
        # IBAN-like identifiers: uppercase, spaces removed.
        ("IBAN DE89 3704 0044 0532 0130 00 please", "de89370400440532013000", MatchKind.ACCOUNT),
        ("IBAN DE89370400440532013000", "DE89 3704 0044 0532 0130 00", MatchKind.ACCOUNT),
        ("IBAN DE89370400440532013000", "pay DE89370400440532013000 by friday", MatchKind.EMBEDDED),
        # Account numbers: 6+ digits, split by spaces or dashes.
        ("wire to 12-34-56-78", "acct 12345678 (savings)", MatchKind.EMBEDDED),
        ("wire to 12345678", "12-34-56-78", MatchKind.ACCOUNT),
        # Identifiers: 6+ characters with an underscore or mixing letters and digits.
        ("charge ch_3Abc123 failed", "CH_3ABC123", MatchKind.ACCOUNT),
        ("customer cus_9s8d7f", "cus_9s8d7f", MatchKind.ACCOUNT),
        ("charge ch_3Abc123 failed", "refund ch_3abc123 in full", MatchKind.EMBEDDED),
        ("user a1b2c3d4", "add collaborator a1b2c3d4 please", MatchKind.EMBEDDED),
    ],
)
def test_atoms(text: str, value: str, expected: MatchKind) -> None:
    assert kinds(text, value)[:1] == [expected]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("see https://evil.example/pay", "https://good.example/pay"),
        ("mirror at evil.example", "https://api.evil.example/x"),  # a subdomain is another host
        ("write to bob@evil.example", "alice@evil.example"),
        ("IBAN DE89370400440532013000", "DE89370400440532013001"),
        ("wire to 12345678", "acct 12345679"),
        ("charge ch_3Abc123 failed", "ch_3Abc124"),
        ("charge ch_3Abc123 failed", "ch"),
    ],
)
def test_different_atoms_do_not_match(text: str, value: str) -> None:
    assert kinds(text, value) == []


# -- hits and sources -----------------------------------------------------------------


def test_one_hit_per_source_naming_it() -> None:
    index = TextIndex()
    assert index.add("refund ch_3Abc123 now", "tool:stripe_get_charge description")
    assert index.add("nothing here", "tool:web_fetch")
    assert index.add("also ch_3Abc123 here, ch_3Abc123 twice", "retriever:docs")
    assert index.add("and ch_3Abc123 again", "retriever:docs")
    hits = index.find("ch_3Abc123")
    assert [hit.source for hit in hits] == ["tool:stripe_get_charge description", "retriever:docs"]


def test_excerpt_is_short_readable_and_around_the_match() -> None:
    text = "x" * 500 + " wire\tto\x00 IBAN DE89370400440532013000\n please " + "y" * 500
    (hit,) = index_of(text).find("DE89370400440532013000")
    assert hit == Hit("tool:t0", MatchKind.ACCOUNT, hit.excerpt)
    assert len(hit.excerpt) <= 80
    assert "DE89370400440532013000" in hit.excerpt
    assert not any(ord(c) < 32 for c in hit.excerpt)  # safe in an error message


@pytest.mark.parametrize("value", ["octocat-evil", "john smith", 1000, "https://evil.example/x"])
def test_excerpt_at_the_edges_of_a_text(value: Value) -> None:
    for text in ("octocat-evil john smith $1,000 https://evil.example/x", "https://evil.example/x"):
        for hit in index_of(text).find(value):
            assert len(hit.excerpt) <= 80


def test_an_empty_index_finds_nothing() -> None:
    assert TextIndex().find("octocat-evil") == ()
    assert TextIndex().find("x" * (MAX_VALUE_CHARS + 1)) == ()


# -- bounds ---------------------------------------------------------------------------


def test_add_refuses_text_past_max_bytes_and_keeps_nothing_of_it() -> None:
    index = TextIndex(max_bytes=10)
    assert index.add("\u00e9" * 4, "tool:a")  # 8 bytes of UTF-8, 4 characters
    assert (len(index), index.size_bytes) == (1, 8)
    assert not index.add("abc", "tool:b")
    assert (len(index), index.size_bytes) == (1, 8)
    assert index.add("ab", "tool:c")  # exactly at the bound
    assert (len(index), index.size_bytes) == (2, 10)


def test_a_lone_surrogate_is_counted_not_fatal() -> None:
    index = TextIndex()
    assert index.add("bad \ud800 text octocat-evil", "tool:a")
    assert index.size_bytes == len("bad  text octocat-evil") + 3
    assert [h.kind for h in index.find("octocat-evil")] == [MatchKind.SUBSTRING]


def test_a_string_too_long_to_check_whole_fails_closed() -> None:
    value = "octocat-evil " + "z" * MAX_VALUE_CHARS
    hits = index_of("add octocat-evil now").find(value)
    assert hits[-1].source == UNCHECKED_SOURCE
    assert hits[-1].kind is MatchKind.UNCHECKED


def test_an_integer_too_large_to_check_fails_closed() -> None:
    (hit,) = index_of("refund 1000").find(10**5000)
    assert hit.kind is MatchKind.UNCHECKED


def test_adversarial_near_matches_are_cut_off_and_count_as_a_match() -> None:
    """Every 3-letter token starts a squashed "aaaaaaaa" but none ends one: each is a
    near match. Past 1,000 of them the scan stops and reports a hit (fail closed)."""
    index = index_of("aaa " * 20_000)
    (hit,) = index.find("aaaaaaaa")
    assert hit.kind is MatchKind.SUBSTRING
    assert "too many near matches" in hit.excerpt


def test_many_texts_and_lookups_after_each_add() -> None:
    index = TextIndex()
    for i in range(300):
        assert index.add(f"issue {i}: pay cus_{i:06d}x", f"tool:issue#{i}")
        assert [h.source for h in index.find(f"cus_{i:06d}x")] == [f"tool:issue#{i}"]
    assert len(index) == 300


@pytest.mark.parametrize(
    "text",
    [
        "a." * 100_000,  # one long run of dots: a domain is tried once per run
        ".https://" * 25_000,  # rejected schemes: each "://" looked at once
        "https://" * 25_000,
        "a@b." * 50_000,
        "1,000," * 30_000,
        "1.2." * 50_000,
        "ab12 " * 40_000,
        "aaa " * 50_000,
    ],
)
def test_adversarial_texts_are_indexed_in_linear_time(text: str) -> None:
    """No timing is asserted; a quadratic path here would take minutes and trip the
    suite's timeout (one was found: a rejected "x.https://" rescanned the rest)."""
    index = TextIndex()
    assert index.add(text, "tool:page")
    assert index.find("aaaaaaaaaa") is not None
    assert index.find("https://a.example/x") == ()


# -- the package ----------------------------------------------------------------------


def test_the_public_names_are_sorted_complete_and_documented() -> None:
    assert taint.__all__ == sorted(taint.__all__)
    for name in taint.__all__:
        assert (getattr(taint, name).__doc__ or "").strip(), name
    public = {n for m in (_match, _ledger, _memory) for n in m.__all__}
    # the LangChain parts, loaded lazily
    from vertex_tools.taint import _callback, _guard, _headers

    lazy = (_callback, _guard, _headers)
    langchain_parts = {n for m in lazy for n in m.__all__} & set(taint.__all__)
    assert public | langchain_parts == set(taint.__all__)


def test_the_core_imports_neither_langchain_nor_the_broker() -> None:
    """The broker imports this package; the agent process does too (DESIGN.md)."""
    code = (
        "import sys, vertex_tools; before = set(sys.modules); import vertex_tools.taint; "
        "print(sorted(m for m in sys.modules if m.startswith('langchain')"
        " or (m not in before and m.startswith('vertex_tools.')"
        " and not m.startswith('vertex_tools.taint'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def letters(n: int) -> str:
    """A word of five letters, unique for each n < 26**5, with no digit (not an atom)."""
    word = ""
    for _ in range(5):
        n, r = divmod(n, 26)
        word += "abcdefghijklmnopqrstuvwxyz"[r]
    return word


@pytest.mark.parametrize("texts", [1, 400])
def test_every_part_of_a_large_index_is_found(texts: int) -> None:
    """The filter is split by chunks of the blob and by segments of texts; a match
    must be found whatever chunk or segment it starts in, and across their edges."""
    words = [letters(i * 7919) for i in range(60_000)]  # ~360 KB: six chunks
    index = TextIndex()
    per_text = len(words) // texts
    for t in range(texts):
        assert index.add(" ".join(words[t * per_text : (t + 1) * per_text]), f"tool:t{t}")
    assert index._squash_len >> _CHUNK_BITS >= 4
    assert len(index._segments) == (1 if texts == 1 else 6)  # 4096, 8192, ... grams
    for i in range(0, len(words) - 1, 37):
        source = f"tool:t{i // per_text}"
        assert [h.source for h in index.find(words[i])] == [source], i  # 5 letters: text
        if (i + 1) % per_text:  # two words of one text: 10 letters, compared squashed
            pair = f"{words[i]}-{words[i + 1]}"
            assert [h.source for h in index.find(pair)] == [source], i
    assert index.find(letters(7919 * 60_001)) == ()
