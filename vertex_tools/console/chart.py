"""The spend chart: one horizontal bar per grant, spent against its daily ceiling.

Drawn on the server as SVG with presentation attributes only (the console's CSP
allows no inline style); the numbers are also in the table beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from vertex_tools.console.html import Safe, fmt, join

__all__ = ["SpendBar", "spend_chart"]

_WIDTH = 720
_LABEL = 200
_BAR = 380
_ROW = 44


@dataclass(frozen=True, slots=True)
class SpendBar:
    """A grant's spend in the last 24 hours, in minor units of ``currency``."""

    grant: str
    currency: str
    spent: int
    per_day: int | None
    per_call: int | None

    @property
    def fraction(self) -> float:
        """Spent over ceiling, capped at 1 (0 without a daily ceiling)."""
        if not self.per_day:
            return 0.0
        return min(1.0, self.spent / self.per_day)


def spend_chart(bars: list[SpendBar]) -> Safe:
    """The SVG; a bar turns amber past 80 % of its ceiling and red at it."""
    height = _ROW * len(bars) + 16
    rows: list[Safe] = []
    for i, bar in enumerate(bars):
        y = 8 + i * _ROW
        fill = "#2f855a" if bar.fraction < 0.8 else "#b7791f" if bar.fraction < 1 else "#c53030"
        ceiling = f"{bar.per_day:,}" if bar.per_day else "no daily ceiling"
        rows.append(
            fmt(
                "<g><title>{title}</title>"
                '<text x="0" y="{ty}" class="chart-label">{grant}</text>'
                '<rect x="{x}" y="{y}" width="{bw}" height="22" rx="3" fill="#e2e8f0"/>'
                '<rect x="{x}" y="{y}" width="{fw}" height="22" rx="3" fill="{fill}"/>'
                '<text x="{tx}" y="{ty}" class="chart-value">{spent} / {ceiling} {cur}</text></g>',
                title=f"{bar.grant}: {bar.spent} of {ceiling} {bar.currency} in 24 h",
                grant=bar.grant if len(bar.grant) <= 26 else bar.grant[:25] + "…",
                x=_LABEL,
                y=y,
                ty=y + 16,
                bw=_BAR,
                fw=round(_BAR * bar.fraction),
                fill=fill,
                tx=_LABEL + _BAR + 10,
                spent=f"{bar.spent:,}",
                ceiling=ceiling,
                cur=bar.currency,
            )
        )
    return fmt(
        '<svg class="chart" role="img" aria-label="spend per grant against its daily ceiling" '
        'xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">'
        "{rows}</svg>",
        w=_WIDTH,
        h=height,
        rows=join(rows),
    )
