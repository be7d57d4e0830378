"""Properties of taint matching, over inputs hypothesis makes up."""

from __future__ import annotations

import contextlib
import string
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vertex_tools.taint import (
    Hit,
    MatchKind,
    ProvenanceLedger,
    Source,
    Taint,
    TaintMemory,
    TaintReport,
    TextIndex,
    Value,
    normalise,
)

values: st.SearchStrategy[Value] = st.one_of(
    st.text(),
    st.text(alphabet=string.ascii_letters + string.digits + " -_.,@:/+$", max_size=40),
    st.integers(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
texts = st.one_of(
    st.text(),
    st.text(alphabet=string.ascii_letters + string.digits + " -_.,@:/+$\n", max_size=200),
)
relaxed = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@relaxed
@given(text=texts, more=st.lists(texts, max_size=3), value=values)
def test_find_never_raises_and_returns_hits(text: str, more: list[str], value: Value) -> None:
    index = TextIndex()
    for i, t in enumerate([text, *more]):
        index.add(t, f"tool:t{i}")
    hits = index.find(value)
    assert isinstance(hits, tuple)
    assert all(isinstance(h, Hit) and len(h.excerpt) <= 80 for h in hits)


arguments = st.recursive(
    values,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=10), inner, max_size=4),
    ),
    max_leaves=20,
)


@relaxed
@given(text=texts, args=st.dictionaries(st.sampled_from("abc"), arguments), control=st.text("abcd"))
def test_label_never_raises_and_reports_only_control_arguments(
    text: str, args: dict[str, object], control: str
) -> None:
    ledger = ProvenanceLedger(run_id="r")
    ledger.add_untrusted(text, Source("tool", "page"))
    report = ledger.label(args, control)
    assert {t.argument for t in report.tainted} <= set(control) & set(args)
    assert set(report.trusted) <= set(control) & set(args)
    assert TaintReport.from_header(report.to_header()).tainted is not None


@relaxed
@given(text=st.text())
def test_normalise_is_idempotent_and_well_formed(text: str) -> None:
    once = normalise(text)
    assert normalise(once) == once
    assert once == once.strip() and "  " not in once
    assert all(c.isalnum() or c == " " for c in once)


words = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8)
copied = st.text(alphabet=string.ascii_letters + string.digits + "-_.@:/", min_size=1, max_size=30)


@relaxed
@given(before=st.lists(words, max_size=5), value=copied, after=st.lists(words, max_size=5))
def test_a_value_copied_into_a_text_is_found(
    before: list[str], value: str, after: list[str]
) -> None:
    """However the text around it reads, a value with 4+ alphanumerics (that is not a
    single-digit number) copied verbatim between spaces is found."""
    alnum = normalise(value).replace(" ", "")
    tiny_number = alnum.isdigit() and int(alnum) < 10
    if len(alnum) < 4 or tiny_number:
        return
    index = TextIndex()
    index.add(" ".join([*before, value, *after]), "tool:page")
    assert index.find(value) != ()


@relaxed
@given(text=texts, value=values)
def test_a_value_the_user_also_gave_is_never_tainted(text: str, value: Value) -> None:
    ledger = ProvenanceLedger(run_id="r")
    ledger.add_untrusted(text, Source("tool", "page"))
    ledger.add_trusted(text, Source("user", "prompt"))
    assert ledger.check(value) == ()


names = st.text(min_size=1, max_size=20)
hits = st.builds(Hit, st.text(max_size=30), st.sampled_from(MatchKind), st.text(max_size=80))
reports = st.builds(
    TaintReport,
    run_id=st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True),
    tainted=st.lists(st.builds(Taint, names, st.tuples(*[hits] * 2)), max_size=4).map(tuple),
    trusted=st.lists(names, max_size=4).map(tuple),
    untrusted_seen=st.booleans(),
    overflowed=st.booleans(),
)


@relaxed
@given(report=reports)
def test_a_report_round_trips_through_its_header(report: TaintReport) -> None:
    assert TaintReport.from_header(report.to_header()) == report


@relaxed
@given(text=st.one_of(st.text(), st.text(alphabet=string.ascii_letters + string.digits + "-_")))
def test_from_header_refuses_garbage_with_value_error_only(text: str) -> None:
    with contextlib.suppress(ValueError):
        TaintReport.from_header(text)


@relaxed
@given(value=st.decimals(min_value=-(10**9), max_value=10**9, places=2))
def test_an_amount_in_minor_units_matches_its_text(value: Decimal) -> None:
    index = TextIndex()
    index.add(f"refund ${value:,.2f} today", "tool:page")
    cents = int(abs(value) * 100)
    if cents >= 10:
        assert index.find(cents) != ()


@relaxed
@given(ops=st.lists(st.tuples(st.floats(0, 40), st.integers(8, 40)), max_size=30))
def test_taint_memory_agrees_with_a_model(ops: list[tuple[float, int]]) -> None:
    """A plain list model of TTL expiry and the per-run byte bound: a text is kept when
    it fits beside the unexpired ones, expires ``ttl`` after it was remembered, and a
    text that did not fit marks the run overflowed for ``ttl``."""
    now = [0.0]
    ttl, room, key = 60.0, 100, ("tok", "run")
    memory = TaintMemory(ttl=ttl, max_bytes_per_run=room, clock=lambda: now[0])
    kept: list[tuple[float, int, int]] = []  # (remembered at, size, id)
    overflow_until = float("-inf")
    for i, (advance, size) in enumerate(ops):
        now[0] += advance
        kept = [k for k in kept if k[0] + ttl > now[0]]
        if sum(k[1] for k in kept) + size <= room:
            kept.append((now[0], size, i))
        else:
            overflow_until = now[0] + ttl
        memory.remember(key, f"id{i:04d}x".ljust(size), "broker:a")
    ids = {k[2] for k in kept}
    for i in range(len(ops)):
        assert bool(memory.find(key, f"id{i:04d}x")) is (i in ids), i
    assert memory.seen(key) is bool(kept)
    assert memory.overflowed(key) is (now[0] < overflow_until)
