"""Request paths: strict validation and glob matching.

Invariant: the path the policy matches is byte for byte the path the broker
forwards. So instead of normalising ambiguous paths (and risking a parser
disagreement with the upstream), anything ambiguous is refused: dot segments,
empty segments, backslashes, encoded slashes, dots or backslashes, control
characters, percent signs not followed by two hex digits, and ``;`` (path
parameters: Tomcat, Jetty and Spring read ``..;`` as ``..``).

Patterns: literal segments, ``*`` for exactly one non-empty segment, and a
trailing ``**`` for one or more segments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vertex_tools.errors import RequestRejected

__all__ = ["PathPattern", "check_path"]

# RFC 3986 pchar without '%' (handled separately) and without ':' '@' oddities excluded.
_SEGMENT_CHARS = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,=:@%]*\Z")
_PCT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_FORBIDDEN_ENCODINGS = re.compile(r"%(2[eEfF]|5[cC]|3[bB]|00|0[aAdD])")
_LITERAL_SEGMENT = re.compile(r"^[A-Za-z0-9\-._~!$&'()+,=:@]+\Z")
MAX_PATH = 2048


def check_path(path: str) -> list[str]:
    """Validate a request path and return its segments; raise ``RequestRejected`` if ambiguous."""
    if not path.startswith("/"):
        raise RequestRejected(f"path must start with '/': {path[:80]!r}")
    if len(path) > MAX_PATH:
        raise RequestRejected(f"path longer than {MAX_PATH} characters")
    if path == "/":
        return []
    segments = path[1:].split("/")
    for segment in segments:
        if segment == "":
            raise RequestRejected("empty path segment ('//' or a trailing '/') is not allowed")
        if segment in (".", ".."):
            raise RequestRejected("dot segments ('.' and '..') are not allowed in paths")
        if not _SEGMENT_CHARS.match(segment):
            raise RequestRejected(
                f"path segment {segment[:40]!r} has characters that need escaping"
            )
        if _PCT.search(segment):
            raise RequestRejected(f"path segment {segment[:40]!r} has a malformed percent-escape")
        if _FORBIDDEN_ENCODINGS.search(segment):
            raise RequestRejected(
                "encoded '/', '.', '\\', ';', NUL, CR or LF in a path segment is not allowed"
            )
    return segments


@dataclass(frozen=True, slots=True)
class PathPattern:
    """A compiled path pattern such as ``/items/*`` or ``/repos/acme/**``."""

    text: str
    segments: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> PathPattern:
        """Parse a pattern; raise ``ValueError`` naming the problem."""
        if not isinstance(text, str) or not text.startswith("/"):
            raise ValueError(f"path pattern must start with '/': {text!r}")
        if text == "/":
            return cls(text, ())
        parts = tuple(text[1:].split("/"))
        for i, part in enumerate(parts):
            if part == "**":
                if i != len(parts) - 1:
                    raise ValueError(f"'**' may only be the last segment: {text!r}")
            elif part == "*":
                continue
            elif part in ("", ".", "..") or not _LITERAL_SEGMENT.match(part):
                raise ValueError(
                    f"bad segment {part!r} in path pattern {text!r}: use letters, digits, "
                    "-._~ and the like, '*' for one segment, or a final '**'"
                )
        return cls(text, parts)

    def matches(self, segments: list[str]) -> bool:
        """True when the validated request segments match this pattern."""
        pattern = self.segments
        if pattern and pattern[-1] == "**":
            head = pattern[:-1]
            if len(segments) <= len(head):
                return False
        elif len(segments) != len(pattern):
            return False
        else:
            head = pattern
        return all(p == "*" or p == s for p, s in zip(head, segments, strict=False))
