"""Reading the fields a catalog marks untrusted out of a provider's JSON answer.

A field path is dot-separated names; ``[]`` after a name (or alone at the
start) means every item of a list; ``*`` means every key of an object. A
path that ends on an object or list takes every string and number beneath
it (``metadata``, ``shipping``). Paths that do not fit the answer yield
nothing: the answer decides its shape, not us.

    >>> list(untrusted_texts({"data": [{"description": "hi"}]}, ["data[].description"]))
    [('data[].description', 'hi')]
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["MAX_LEAVES", "untrusted_texts"]

MAX_LEAVES = 100_000
"""Leaves read from one answer; the broker's response cap bounds it long before."""


def _steps(path: str) -> list[str]:
    steps: list[str] = []
    for part in path.split("."):
        if part.endswith("[]"):
            if part[:-2]:
                steps.append(part[:-2])
            steps.append("[]")
        elif part:
            steps.append(part)
    return steps


def _leaves(value: Any, budget: list[int]) -> Iterator[str]:
    stack = [value]
    while stack and budget[0] > 0:
        item = stack.pop()
        if isinstance(item, bool) or item is None:
            continue
        if isinstance(item, str | int | float):
            budget[0] -= 1
            yield str(item)
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def _walk(value: Any, steps: list[str], budget: list[int]) -> Iterator[str]:
    if not steps:
        yield from _leaves(value, budget)
        return
    step, rest = steps[0], steps[1:]
    if step == "[]":
        if isinstance(value, list):
            for item in value:
                yield from _walk(item, rest, budget)
    elif step == "*":
        if isinstance(value, dict):
            for item in value.values():
                yield from _walk(item, rest, budget)
    elif isinstance(value, dict) and step in value:
        found = value[step]
        if step == "content" and value.get("encoding") == "base64" and isinstance(found, str):
            found = _decoded(found)
        yield from _walk(found, rest, budget)


def _decoded(text: str) -> str:
    try:
        return base64.b64decode("".join(text.split()), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return text


def untrusted_texts(payload: Any, paths: Iterable[str]) -> Iterator[tuple[str, str]]:
    """``(path, text)`` for every string or number under each path of ``payload``."""
    budget = [MAX_LEAVES]
    for path in paths:
        for text in _walk(payload, _steps(path), budget):
            if text:
                yield path, text
