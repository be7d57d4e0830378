"""One line of the results table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Row:
    """A measurement, its same-run reference, and the issue 9 target it is held against."""

    benchmark: str
    measured: str
    reference: str = "-"
    ratio: str = "-"
    target: str = "-"
    met: bool | None = None  # None: no target, or not measured

    @property
    def verdict(self) -> str:
        return "-" if self.met is None else "yes" if self.met else "NO"
