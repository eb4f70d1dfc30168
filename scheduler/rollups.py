"""Hourly rollups as a pandas frame: what every job reads instead of ``request_logs``.

:func:`load` returns one row per stored rollup row in a time range, with the latency
histogram spread over columns ``h0`` … ``h<N>`` so that ``groupby(...).sum()`` merges
histograms like any other count; :func:`percentiles` reads quantiles back from them.

Percentiles: the buckets are up to a third wide, and in the tail, where p95 lives, the
density falls steeply across one, so reading a bucket as flat puts p95 up to 8 % off the
exact value on lognormal latencies. :func:`percentiles` takes the density inside the
bucket as a straight line between its edges, each edge's height the mean of the
densities (count / width) of the two buckets meeting there, scaled to hold the bucket's
count; the quantile is where its area reaches the rank. That stays within about 3 %.
The cost of a job is then proportional to rollup rows (keys times hours), never to requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg
import numpy as np
import pandas as pd

from schema.latency import BUCKET_COUNT, LATENCY_BOUNDS_MS

HOUR = timedelta(hours=1)
KEYS = ("bucket_start", "org_id", "feature", "provider", "model", "response_model",
        "task_type", "status_class")  # fmt: skip
COUNTS = (
    "request_count",
    "error_count",
    "streaming_count",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
    "unpriced_count",
    "latency_ms_sum",
    "ttfb_ms_sum",
    "ttfb_count",
    "tokens_known_count",
    "tokeniser_count",
)
HIST = tuple(f"h{i}" for i in range(BUCKET_COUNT))

_SCALARS = (*KEYS, *(c for c in COUNTS if c != "cost_usd"), "cost_usd")
# The histogram comes back as one column per bucket, so the frame is built from the
# records in one call (no Python loop per row).
_SELECT = f"""
SELECT {", ".join(KEYS[:1])}, org_id::text AS org_id, {", ".join(KEYS[2:])},
       {", ".join(c for c in COUNTS if c != "cost_usd")}, cost_usd::float8 AS cost_usd,
       {", ".join(f"latency_histogram[{i + 1}] AS {h}" for i, h in enumerate(HIST))}
FROM request_rollups
WHERE bucket_start >= $1 AND bucket_start < $2
"""


def hour_start(moment: datetime) -> datetime:
    """The start of the UTC hour holding ``moment``."""
    return moment.replace(minute=0, second=0, microsecond=0)


def empty() -> pd.DataFrame:
    return pd.DataFrame(columns=[*KEYS, *COUNTS, *HIST])


async def load(
    conn: asyncpg.Connection,
    since: datetime,
    until: datetime,
    *,
    org_ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Rollup rows with ``since <= bucket_start < until`` (of ``org_ids`` only, when
    given). ``org_id`` is text; ``cost_usd`` a float (summed in USD, shown rounded)."""
    if org_ids is None:
        rows = await conn.fetch(_SELECT, since, until)
    else:
        rows = await conn.fetch(
            _SELECT + " AND org_id = ANY($3::uuid[])", since, until, list(org_ids)
        )
    if not rows:
        return empty()
    frame = pd.DataFrame.from_records(rows, columns=[*_SCALARS, *HIST])
    frame["bucket_start"] = pd.to_datetime(frame["bucket_start"], utc=True)
    return frame


_UPPER = np.array(LATENCY_BOUNDS_MS, dtype=np.float64)
_LOWER = np.concatenate(([0.0], _UPPER[:-1]))
_WIDTH = _UPPER - _LOWER


def percentiles(histograms: np.ndarray | pd.DataFrame, q: float) -> np.ndarray:
    """The ``q`` quantile (0 < q <= 1) of each histogram row (``BUCKET_COUNT`` columns);
    NaN for an empty row. A quantile in the open-ended last bucket reads as the last
    bound ("at least this slow")."""
    counts = np.asarray(histograms, dtype=np.float64)
    if counts.ndim == 1:
        counts = counts[np.newaxis, :]
    totals = counts.sum(axis=1)
    cumulative = counts.cumsum(axis=1)
    rank = q * totals
    index = np.minimum((cumulative < rank[:, np.newaxis]).sum(axis=1), BUCKET_COUNT - 1)
    rows = np.arange(len(counts))
    bounded = np.minimum(index, len(_UPPER) - 1)
    in_bucket = counts[rows, bounded]
    before = cumulative[rows, bounded] - in_bucket
    # Densities of the bounded buckets, the open one given its neighbour's.
    density = counts[:, : len(_UPPER)] / _WIDTH
    here = density[rows, bounded]
    left = np.where(bounded > 0, density[rows, np.maximum(bounded - 1, 0)], here)
    has_right = bounded + 1 < len(_UPPER)
    right = np.where(has_right, density[rows, np.minimum(bounded + 1, len(_UPPER) - 1)], here)
    at_lower, at_upper = (left + here) / 2, (here + right) / 2
    width = _WIDTH[bounded]
    # Area under the line from the lower edge to t: at_lower * t + slope * t^2, with
    # slope = (at_upper - at_lower) / (2 * width); solved for the rank's share of it.
    fraction = np.divide(rank - before, in_bucket, out=np.ones_like(rank), where=in_bucket > 0)
    target = np.clip(fraction, 0, 1) * (at_lower + at_upper) / 2 * width
    slope = (at_upper - at_lower) / (2 * width)
    root = np.sqrt(np.maximum(at_lower**2 + 4 * slope * target, 0))
    offset = np.divide(2 * target, at_lower + root, out=np.zeros_like(rank), where=root > 0)
    value = _LOWER[bounded] + np.clip(offset, 0, width)
    value = np.where(index >= len(_UPPER), _UPPER[-1], value)
    return np.where(totals > 0, value, np.nan)
