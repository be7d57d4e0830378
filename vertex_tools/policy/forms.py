"""Form bodies (``application/x-www-form-urlencoded``): ``parse_qsl`` and ``urlencode``'s
answers, without their per-field cost on the plain bodies agents send.

Every decision on a Stripe POST reads its form body (the amount, the catalog's
strict check, the refund look-up) and re-encodes it; through ``urllib.parse``
that was about half of ``decide()``. Both functions here return exactly what
``urllib.parse`` returns for the same arguments (the tests compare them on
random and hostile input); they only skip work that cannot change the answer:

* :func:`parse_form` of a text without ``%`` or ``+``: unquoting is then the
  identity (``unquote`` returns a string without ``%`` unchanged, and only ``+``
  becomes a space), so splitting on ``&`` and the first ``=`` is all there is;
* :func:`encode_form` of pairs made only of characters ``quote_plus`` never
  escapes (``A-Z a-z 0-9 _ . - ~``): quoting is then the identity.

Anything else goes to ``urllib.parse`` itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import chain
from urllib.parse import parse_qsl, urlencode

__all__ = ["encode_form", "parse_form"]

# urllib.parse._ALWAYS_SAFE: what quote() leaves as it is.
_NEVER_QUOTED = re.compile(r"[A-Za-z0-9_.~-]*")


def parse_form(text: str, *, strict: bool, errors: str = "replace") -> list[tuple[str, str]]:
    """``parse_qsl(text, keep_blank_values=True, strict_parsing=strict, errors=errors)``
    (percent-escapes are read as UTF-8)."""
    if "%" in text or "+" in text:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=strict, errors=errors)
    pairs: list[tuple[str, str]] = []
    if not text:
        return pairs
    for piece in text.split("&"):
        # parse_qsl's loop with unquote() left out (it returns these unchanged).
        if not piece and not strict:
            continue
        name, equals, value = piece.partition("=")
        if not equals and strict:
            raise ValueError(f"bad query field: {piece!r}")
        pairs.append((name, value))
    return pairs


def encode_form(pairs: Sequence[tuple[str, str]]) -> str:
    """``urlencode(pairs)`` for pairs of strings."""
    if _NEVER_QUOTED.fullmatch("".join(chain.from_iterable(pairs))):
        return "&".join([f"{name}={value}" for name, value in pairs])
    return urlencode(pairs)
