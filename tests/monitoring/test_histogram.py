from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from monitoring.histogram import (
    BOUNDS_MS,
    BUCKET_COUNT,
    bucket_index,
    bucket_range,
    empty_counts,
    percentile,
)


def test_bounds_are_log_spaced_from_half_a_millisecond_to_a_minute() -> None:
    assert BOUNDS_MS[0] == 0.5
    assert BOUNDS_MS[-1] > 60_000
    ratios = {round(b / a, 9) for a, b in itertools.pairwise(BOUNDS_MS)}
    assert ratios == {round(2**0.25, 9)}
    assert len(BOUNDS_MS) + 1 == BUCKET_COUNT


@pytest.mark.parametrize("duration", [0.0, 0.1, 0.5, 0.51, 3.0, 99.9, 100.0, 1234.5, 65_535.9])
def test_a_duration_lands_in_the_bucket_whose_range_holds_it(duration: float) -> None:
    lower, upper = bucket_range(bucket_index(duration))
    assert lower < duration <= upper or (duration == 0.0 and lower == 0.0)


def test_a_bound_belongs_to_its_own_bucket_like_prometheus_le() -> None:
    assert bucket_index(BOUNDS_MS[10]) == 10
    assert bucket_index(math.nextafter(BOUNDS_MS[10], math.inf)) == 11


def test_durations_beyond_the_last_bound_overflow() -> None:
    assert bucket_index(10 * 60_000) == BUCKET_COUNT - 1
    assert bucket_range(BUCKET_COUNT - 1)[1] == math.inf


def test_percentile_of_no_data_is_none() -> None:
    assert percentile(empty_counts(), 0.95) is None


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99])
def test_percentiles_match_numpy_within_one_bucket_width(seed: int, q: float) -> None:
    rng = random.Random(seed)
    # Latency-like: log-normal around 40 ms with a long tail.
    samples = [rng.lognormvariate(math.log(40), 0.9) for _ in range(5000)]
    counts = empty_counts()
    for value in samples:
        counts[bucket_index(value)] += 1

    estimate = percentile(counts, q)
    # Nearest-rank ("inverted CDF") is the definition the estimate targets.
    reference = float(np.quantile(samples, q, method="inverted_cdf"))
    lower, upper = bucket_range(bucket_index(reference))

    assert estimate is not None
    assert lower <= estimate <= upper
    assert abs(estimate - reference) <= upper - lower
    # And it is close to numpy's default (linear) definition too.
    assert abs(estimate - float(np.quantile(samples, q))) <= upper - lower


def test_percentile_of_a_single_value_stays_in_its_bucket() -> None:
    counts = empty_counts()
    counts[bucket_index(250.0)] = 1
    lower, upper = bucket_range(bucket_index(250.0))
    for q in (0.01, 0.5, 0.99, 1.0):
        value = percentile(counts, q)
        assert value is not None
        assert lower <= value <= upper
