"""Hourly rollups as a pandas frame: what every job reads instead of ``request_logs``.

:func:`load` returns one row per stored rollup row in a time range, with the latency
histogram spread over columns ``h0`` … ``h<N>`` so that ``groupby(...).sum()`` merges
histograms like any other count; :func:`percentiles` reads quantiles back from them.
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

_SELECT = f"""
SELECT {", ".join(KEYS[:1])}, org_id::text AS org_id, {", ".join(KEYS[2:])},
       {", ".join(c for c in COUNTS if c != "cost_usd")}, cost_usd::float8 AS cost_usd,
       latency_histogram
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
    scalars = [*KEYS, *(c for c in COUNTS if c != "cost_usd"), "cost_usd"]
    frame = pd.DataFrame([tuple(r[c] for c in scalars) for r in rows], columns=scalars)
    hist = np.array([r["latency_histogram"] for r in rows], dtype=np.int64)
    frame = pd.concat([frame, pd.DataFrame(hist, columns=list(HIST))], axis=1)
    frame["bucket_start"] = pd.to_datetime(frame["bucket_start"], utc=True)
    return frame


_UPPER = np.array(LATENCY_BOUNDS_MS, dtype=np.float64)
_LOWER = np.concatenate(([0.0], _UPPER[:-1]))


def percentiles(histograms: np.ndarray | pd.DataFrame, q: float) -> np.ndarray:
    """The ``q`` quantile (0 < q <= 1) of each histogram row, interpolated linearly
    inside the bucket that holds it; NaN for an empty row. A quantile in the open-ended
    last bucket reads as the last bound ("at least this slow")."""
    counts = np.asarray(histograms, dtype=np.float64)
    if counts.ndim == 1:
        counts = counts[np.newaxis, :]
    totals = counts.sum(axis=1)
    cumulative = counts.cumsum(axis=1)
    rank = q * totals
    index = (cumulative < rank[:, np.newaxis]).sum(axis=1)
    index = np.minimum(index, BUCKET_COUNT - 1)
    rows = np.arange(len(counts))
    in_bucket = counts[rows, index]
    before = cumulative[rows, index] - in_bucket
    bounded = np.minimum(index, len(_UPPER) - 1)
    fraction = np.divide(rank - before, in_bucket, out=np.ones_like(rank), where=in_bucket > 0)
    value = _LOWER[bounded] + (_UPPER[bounded] - _LOWER[bounded]) * np.clip(fraction, 0, 1)
    value = np.where(index >= len(_UPPER), _UPPER[-1], value)
    return np.where(totals > 0, value, np.nan)
