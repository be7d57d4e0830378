"""Reading the amount and currency of a money-moving request body.

Fail closed: a body the broker cannot read unambiguously (malformed JSON,
duplicate keys, a float, a negative number, a form field given twice) is a
refusal, never "amount 0".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from vertex_tools.policy.forms import parse_form

__all__ = ["Amount", "AmountError", "read_amount"]

_DIGITS = re.compile(r"^(0|[1-9][0-9]{0,17})\Z")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
MAX_JSON_DEPTH = 32


@dataclass(frozen=True, slots=True)
class Amount:
    """An amount in minor units (cents for usd) and its lower-case currency."""

    value: int
    currency: str


class AmountError(ValueError):
    """The amount could not be read; ``missing`` tells absence apart from malformation."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        self.missing = missing
        super().__init__(message)


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise AmountError(f"JSON body has the key {key!r} twice")
        out[key] = value
    return out


def _depth(text: str) -> int:
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _fields(content_type: str, body: bytes) -> dict[str, object]:
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json":
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AmountError("JSON body is not UTF-8") from exc
        if _depth(text) > MAX_JSON_DEPTH:
            raise AmountError(f"JSON body nested deeper than {MAX_JSON_DEPTH}")
        try:
            data = json.loads(text, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as exc:
            raise AmountError(f"JSON body does not parse: {exc.msg}") from exc
        except (ValueError, RecursionError) as exc:  # huge integers, pathological nesting
            raise AmountError("JSON body does not parse") from exc
        if not isinstance(data, dict):
            raise AmountError("JSON body is not an object")
        return data
    if media == "application/x-www-form-urlencoded":
        try:
            pairs = parse_form(body.decode("ascii"), strict=bool(body))
        except (UnicodeDecodeError, ValueError) as exc:
            raise AmountError("form body does not parse") from exc
        fields: dict[str, object] = {}
        for key, value in pairs:
            if key in fields:
                raise AmountError(f"form body has the field {key!r} twice")
            fields[key] = value
        return fields
    raise AmountError(
        f"cannot read an amount from content type {media or '(none)'!r}; "
        "send application/json or application/x-www-form-urlencoded"
    )


def read_amount(
    content_type: str, body: bytes, *, amount_field: str, currency_field: str, default_currency: str
) -> Amount:
    """Read ``amount_field`` (and ``currency_field`` if present) from a body."""
    fields = _fields(content_type, body)
    if amount_field not in fields:
        raise AmountError(f"the body has no {amount_field!r} field", missing=True)
    raw = fields[amount_field]
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise AmountError(f"{amount_field!r} must be a whole number of minor units")
    text = str(raw)
    if not _DIGITS.match(text):
        raise AmountError(f"{amount_field!r} must be a non-negative whole number of minor units")
    currency = fields.get(currency_field, default_currency)
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise AmountError(f"{currency_field!r} must be a three-letter currency code")
    return Amount(int(text), currency.lower())
