"""Fixed log-spaced latency buckets and percentiles computed from them. Pure: no Django.

Every process, table and Prometheus series uses the same bounds, so bucket arrays can be added
element-wise anywhere (in memory, in PostgreSQL upserts, in rollups). Changing BOUNDS_MS
therefore needs a data migration of every stored array.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence

# Four buckets per doubling (each bound ~19% above the previous) from 0.5 ms to ~65 s: fine
# enough to tell 120 ms from 140 ms, coarse enough that a row stays small (70 counts).
_BUCKETS_PER_DOUBLING = 4
_FIRST_BOUND_MS = 0.5
_DOUBLINGS = 17
BOUNDS_MS: tuple[float, ...] = tuple(
    _FIRST_BOUND_MS * 2 ** (i / _BUCKETS_PER_DOUBLING)
    for i in range(_DOUBLINGS * _BUCKETS_PER_DOUBLING + 1)
)
# One bucket per bound (value <= bound, Prometheus' `le`) plus the overflow bucket.
BUCKET_COUNT = len(BOUNDS_MS) + 1

# Prometheus gets every fourth bound (0.5 ms, 1 ms, 2 ms, ... 65.5 s): cumulative counts at a
# subset of bounds are exact, and 18 series per route are plenty for dashboards.
EXPORTED_BOUND_INDEXES: tuple[int, ...] = tuple(range(0, len(BOUNDS_MS), _BUCKETS_PER_DOUBLING))


def bucket_index(duration_ms: float) -> int:
    """The bucket a duration falls in: the first bound >= duration, else the overflow bucket."""
    return bisect_left(BOUNDS_MS, duration_ms)


def bucket_range(index: int) -> tuple[float, float]:
    """The (lower, upper] bounds of a bucket in ms; the overflow bucket's upper bound is inf."""
    lower = 0.0 if index == 0 else BOUNDS_MS[index - 1]
    upper = BOUNDS_MS[index] if index < len(BOUNDS_MS) else math.inf
    return lower, upper


def empty_counts() -> list[int]:
    return [0] * BUCKET_COUNT


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile (0 < q <= 1) in ms estimated from bucket counts; None without data.

    Picks the bucket holding the ceil(q·n)-th smallest value (the nearest-rank definition) and
    interpolates inside it, so the estimate is always within that bucket's width of the truth.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    cumulative = 0
    for index, count in enumerate(counts):
        if count == 0:
            continue
        if cumulative + count >= rank:
            lower, upper = bucket_range(index)
            if math.isinf(upper):
                return lower
            fraction = (rank - cumulative) / count
            if lower == 0.0:
                return upper * fraction
            # Geometric interpolation: inside a log-spaced bucket, values spread log-uniformly.
            return float(lower * (upper / lower) ** fraction)
        cumulative += count
    return bucket_range(len(counts) - 1)[0]  # unreachable for consistent counts


def add_counts(into: list[int], other: Sequence[int]) -> None:
    """Add `other` into `into` element-wise (same bucket layout)."""
    for index, count in enumerate(other):
        if count:
            into[index] += count
