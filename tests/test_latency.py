from __future__ import annotations

import pytest

from schema.latency import (
    BUCKET_COUNT,
    LATENCY_BOUNDS_MS,
    bucket_index,
    histogram,
    merge,
    percentile,
)


def test_bounds_are_increasing() -> None:
    assert list(LATENCY_BOUNDS_MS) == sorted(set(LATENCY_BOUNDS_MS))


@pytest.mark.parametrize(
    ("latency_ms", "bound"),
    [(0.2, 10), (10, 10), (10.01, 20), (999, 1_000), (1_000, 1_000), (59_000, 60_000)],
)
def test_each_latency_is_counted_under_its_upper_bound(latency_ms: float, bound: float) -> None:
    assert LATENCY_BOUNDS_MS[bucket_index(latency_ms)] == bound


def test_slower_than_every_bound_goes_to_the_last_bucket() -> None:
    assert bucket_index(3_600_000) == BUCKET_COUNT - 1
    assert percentile(histogram([3_600_000]), 0.95) == LATENCY_BOUNDS_MS[-1]


def test_p95_of_merged_hours_matches_the_raw_latencies() -> None:
    hour_one = [50.0] * 90 + [900.0] * 5
    hour_two = [45.0] * 3 + [4_500.0] * 2
    merged = merge([histogram(hour_one), histogram(hour_two)])
    assert sum(merged) == 100
    # 93 requests took <= 50 ms, 98 <= 1 s; the two slowest took 4.5 s.
    assert percentile(merged, 0.95) == 1_000
    assert percentile(merged, 0.98) == 1_000
    assert percentile(merged, 0.99) == 5_000
    assert percentile(merged, 0.5) == 50


def test_empty_and_malformed_histograms() -> None:
    assert percentile([0] * BUCKET_COUNT, 0.95) is None
    with pytest.raises(ValueError):
        merge([[1, 2, 3]])
    with pytest.raises(ValueError):
        percentile([0] * BUCKET_COUNT, 0)
