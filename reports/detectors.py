"""Spike and burst detection over counts. Pure: the counts come from `selectors`.

Each detector compares the last window with the org's own baseline: the same window of the
day on each of the previous `BASELINE_DAYS` days (schools are quiet at night and busy after
class, so "the average hour" would cry wolf every afternoon). Two guards keep it quiet:
a minimum volume in the window (a school with ten comments a day is never alarmed by one)
and a statistical margin (the excess must be several standard deviations, not noise).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

BASELINE_DAYS = 14
# How far above the expected count, in standard deviations, before anything fires.
Z_THRESHOLD = 3.0
# With no history, assume this share of comments is negative (typical of school feedback).
PRIOR_NEGATIVE_SHARE = 0.3
# The baseline needs this many items in total before its negative share is trusted.
MIN_BASELINE_ITEMS = 50


# Settings of an org without a saved rule, per detector kind. `threshold` is a ratio to the
# baseline for volume, and an increase of the negative share (0.2 = 20 points) for sentiment.
DEFAULT_RULES: dict[str, dict[str, Any]] = {
    "negative_spike": {"window_minutes": 60, "min_volume": 20, "threshold": 0.2},
    "volume_spike": {"window_minutes": 60, "min_volume": 30, "threshold": 3.0},
    "flagged_burst": {"window_minutes": 15, "min_volume": 10, "threshold": 0.0},
}


@dataclass(frozen=True)
class Finding:
    subject: str
    observed: float
    baseline: float
    details: dict[str, Any] = field(default_factory=dict)


def volume_spike(
    *, total: int, baseline_totals: list[int], min_volume: int, ratio: float
) -> Finding | None:
    """Fires when the window has at least `min_volume` items, at least `ratio` times the
    usual count for this time of day, and is `Z_THRESHOLD` deviations above it."""
    if total < min_volume:
        return None
    mean = statistics.fmean(baseline_totals) if baseline_totals else 0.0
    # Poisson noise is a floor: a perfectly regular baseline must not make every +1 a spike.
    spread = max(
        statistics.pstdev(baseline_totals) if len(baseline_totals) > 1 else 0.0,
        math.sqrt(max(mean, 1.0)),
    )
    z = (total - mean) / spread
    if total >= ratio * max(mean, 1.0) and z >= Z_THRESHOLD:
        return Finding(
            subject="",
            observed=float(total),
            baseline=round(mean, 2),
            details={"z": round(z, 2), "ratio": round(total / max(mean, 1.0), 2)},
        )
    return None


def negative_share_spike(
    *,
    total: int,
    negative: int,
    baseline_totals: list[int],
    baseline_negatives: list[int],
    min_volume: int,
    min_increase: float,
) -> Finding | None:
    """Fires when at least `min_volume` items arrived, their negative share is at least
    `min_increase` above the baseline share, and a binomial test says it is not chance."""
    if total < min_volume:
        return None
    base_total = sum(baseline_totals)
    p0 = (
        sum(baseline_negatives) / base_total
        if base_total >= MIN_BASELINE_ITEMS
        else PRIOR_NEGATIVE_SHARE
    )
    p0 = min(max(p0, 0.02), 0.98)
    share = negative / total
    z = (negative - total * p0) / math.sqrt(total * p0 * (1 - p0))
    if share - p0 >= min_increase and z >= Z_THRESHOLD:
        return Finding(
            subject="",
            observed=round(share, 4),
            baseline=round(p0, 4),
            details={"z": round(z, 2), "negative": negative, "total": total},
        )
    return None


def flagged_bursts(*, groups: dict[str, int], min_volume: int) -> list[Finding]:
    """One finding per source or author with at least `min_volume` flagged items in the
    window: flagged items are rare, so a pile from one place is a flood, not a trend."""
    return [
        Finding(subject=subject, observed=float(n), baseline=0.0, details={"flagged": n})
        for subject, n in sorted(groups.items())
        if n >= min_volume
    ]
