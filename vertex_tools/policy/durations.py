"""Parsing of the small value languages inside policy files: durations and rates."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Rate", "parse_duration", "parse_rate"]

_DURATION = re.compile(r"^([1-9][0-9]{0,8})(s|m|h|d)\Z")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^([1-9][0-9]{0,8})/(second|minute|hour|day)\Z")
_PERIOD_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_duration(text: str) -> int:
    """``"90s"``, ``"30m"``, ``"1h"``, ``"7d"`` -> seconds. Raises ``ValueError`` otherwise."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration; write a whole number and a unit: 90s, 30m, 1h, 7d"
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` requests per ``period`` seconds."""

    limit: int
    period: int

    def __str__(self) -> str:
        unit = {v: k for k, v in _PERIOD_SECONDS.items()}[self.period]
        return f"{self.limit}/{unit}"


def parse_rate(text: str) -> Rate:
    """``"5/second"`` -> Rate(5, 1). Raises ``ValueError`` otherwise."""
    match = _RATE.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"{text!r} is not a rate; write a whole number per second, minute, hour "
            "or day: 5/second"
        )
    return Rate(int(match.group(1)), _PERIOD_SECONDS[match.group(2)])
