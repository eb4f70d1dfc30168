"""The latency histogram stored in ``request_rollups.latency_histogram``.

Rollups keep counts per bucket rather than raw latencies, so percentiles over any
window are computed by adding histograms, whatever the raw row count. Bucket ``i``
counts latencies ``<= LATENCY_BOUNDS_MS[i]`` and above the previous bound; the last
bucket (index ``len(LATENCY_BOUNDS_MS)``) counts everything slower than the last bound.
Changing the bounds changes the stored data's meaning: add a new column instead.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

# Roughly 25 % apart from 10 ms to 10 min: a percentile read from the histogram is
# off by at most one bucket width.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    10, 20, 30, 40, 50, 60, 80, 100, 125, 150, 200, 250, 300, 400, 500, 600, 800,
    1_000, 1_250, 1_500, 2_000, 2_500, 3_000, 4_000, 5_000, 6_000, 8_000,
    10_000, 12_500, 15_000, 20_000, 25_000, 30_000, 40_000, 50_000, 60_000,
    90_000, 120_000, 180_000, 300_000, 600_000,
)  # fmt: skip
BUCKET_COUNT = len(LATENCY_BOUNDS_MS) + 1


def bucket_index(latency_ms: float) -> int:
    """The histogram bucket that counts ``latency_ms``."""
    return bisect_left(LATENCY_BOUNDS_MS, latency_ms)


def histogram(latencies_ms: Iterable[float]) -> list[int]:
    """Counts per bucket for ``latencies_ms``."""
    counts = [0] * BUCKET_COUNT
    for latency in latencies_ms:
        counts[bucket_index(latency)] += 1
    return counts


def merge(histograms: Iterable[Sequence[int]]) -> list[int]:
    """Add histograms bucket by bucket."""
    total = [0] * BUCKET_COUNT
    for counts in histograms:
        if len(counts) != BUCKET_COUNT:
            raise ValueError(f"histogram has {len(counts)} buckets, expected {BUCKET_COUNT}")
        for i, count in enumerate(counts):
            total[i] += count
    return total


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The upper bound (ms) of the bucket holding the ``q`` quantile (0 < q <= 1).

    Returns None for an empty histogram. For the open-ended last bucket, returns the
    last bound: "at least this slow".
    """
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1], got {q}")
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(counts):
        seen += count
        if seen >= rank:
            return float(LATENCY_BOUNDS_MS[min(i, len(LATENCY_BOUNDS_MS) - 1)])
    return float(LATENCY_BOUNDS_MS[-1])
