"""The admission arithmetic both state stores share: a replayed nonce, the rate
limit (GCRA) and the rolling spend window. The stores read and write the rows;
what the numbers mean, and what a refusal says, is decided here once."""

from __future__ import annotations

from vertex_tools.decision import Reason
from vertex_tools.store.base import AdmissionResult, RateKey, SpendRequest

__all__ = ["WINDOW_S", "next_arrival", "over_window", "replayed"]

WINDOW_S = 86400.0
"""The spend ceiling's rolling window: the last 24 hours."""


def replayed() -> AdmissionResult:
    """The refusal of a nonce that was already used."""
    return AdmissionResult(
        Reason.REPLAYED_REQUEST,
        "signature.nonce",
        "this signed request was already used; sign every request afresh",
    )


def next_arrival(bucket: RateKey, stored: float | None, now: float) -> AdmissionResult | float:
    """GCRA: one stored "theoretical arrival time" per bucket (``stored``, None when
    the bucket has none yet), bursts up to the limit. The bucket's new arrival time
    if the call is admitted, else the refusal with when to retry."""
    period = float(bucket.rate.period)
    new_tat = max(stored if stored is not None else now, now) + period / bucket.rate.limit
    # Unix times near 1.8e9 carry ~0.2 us of float error; allow 10 us of slack.
    if new_tat - now > period + 1e-5:
        retry = new_tat - period - now
        return AdmissionResult(
            Reason.RATE_LIMITED,
            bucket.rule,
            f"over the rate limit of {bucket.rate}; retry in {retry:.2f} s",
            retry_after=retry,
        )
    return new_tat


def over_window(spend: SpendRequest, used: int) -> AdmissionResult | None:
    """The refusal when ``spend`` on top of ``used`` (the window's reserved and
    committed amounts) passes the per-day ceiling; None when it fits."""
    if spend.per_day is None or used + spend.amount <= spend.per_day:
        return None
    return AdmissionResult(
        Reason.SPEND_WINDOW_EXCEEDED,
        spend.rule,
        f"{spend.amount} {spend.currency} would bring the last 24 hours to "
        f"{used + spend.amount}, over the ceiling of {spend.per_day}",
        details={"used": used, "limit": spend.per_day},
    )
