"""parse_form and encode_form answer exactly what urllib.parse answers."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vertex_tools.policy.forms import encode_form, parse_form

# Text built mostly from the characters that matter to a form parser.
form_texts = st.text(alphabet=st.sampled_from("ab=&+%;2F0 é\x00[]._~-")) | st.text()
pairs = st.lists(st.tuples(st.text(), st.text()))


def outcome(fn: object, *args: object, **kwargs: object) -> object:
    """The result, or the exception's type and text."""
    try:
        return fn(*args, **kwargs)  # type: ignore[operator]
    except ValueError as exc:
        return (type(exc), str(exc))


@given(text=form_texts, strict=st.booleans(), errors=st.sampled_from(["replace", "strict"]))
def test_parse_form_is_parse_qsl(text: str, strict: bool, errors: str) -> None:
    expected = outcome(
        parse_qsl, text, keep_blank_values=True, strict_parsing=strict, errors=errors
    )
    assert outcome(parse_form, text, strict=strict, errors=errors) == expected


@pytest.mark.parametrize(
    "text",
    ["", "a", "a=", "=", "=b", "a=b=c", "a=1&&b=2", "&", "a=1&", "a=1;b=2", "a+b=c%20d", "%zz=1"],
)
@pytest.mark.parametrize("strict", [True, False])
def test_parse_form_edge_cases(text: str, strict: bool) -> None:
    expected = outcome(parse_qsl, text, keep_blank_values=True, strict_parsing=strict)
    assert outcome(parse_form, text, strict=strict) == expected


@given(items=pairs)
def test_encode_form_is_urlencode(items: list[tuple[str, str]]) -> None:
    assert outcome(encode_form, items) == outcome(urlencode, items)


@pytest.mark.parametrize(
    "items",
    [[], [("a", "1")], [("a", "x&y=z")], [("a=b", "c")], [("k", "a b")], [("metadata[x]", "1")]],
)
def test_encode_form_edge_cases(items: list[tuple[str, str]]) -> None:
    assert encode_form(items) == urlencode(items)
