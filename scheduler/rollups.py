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

import functools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

import asyncpg
import numpy as np
import pandas as pd

from schema.latency import BUCKET_COUNT, LATENCY_BOUNDS_MS
from schema.tables import ROLLUP_KEYS, ROLLUP_SUMS

HOUR = timedelta(hours=1)
KEYS = ROLLUP_KEYS
COUNTS = ROLLUP_SUMS
HIST = tuple(f"h{i}" for i in range(BUCKET_COUNT))


def hour_start(moment: datetime) -> datetime:
    """The start of the UTC hour holding ``moment``."""
    return moment.replace(minute=0, second=0, microsecond=0)


# Summed as floats (cost exactly as NUMERIC first); every other count as int8.
_FLOATS = ("latency_ms_sum", "ttfb_ms_sum", "cost_usd")
INTS = tuple(c for c in COUNTS if c not in _FLOATS)
Step = Literal["hour", "day"] | None


@functools.lru_cache(maxsize=32)
def _query(by: tuple[str, ...], step: Step, of_orgs: bool) -> str:
    """The SELECT of :func:`load`. Postgres adds histograms up bucket by bucket like any
    other count; the counts come back as one int8 array per row and the sums as one
    float8 array, which numpy turns into blocks in C (building a frame from records
    field by field costs several times more)."""
    bucket = {
        "hour": "bucket_start",
        # The first day starts at the window's start, not before it.
        "day": "GREATEST(date_trunc('day', bucket_start, 'UTC'), $1)",
        None: "min(bucket_start)",
    }[step]
    grouped = by != KEYS[2:] or step != "hour"

    def total(column: str, cast: str) -> str:
        return f"sum({column})::{cast}" if grouped else f"{column}::{cast}"

    int_values = [total(c, "int8") for c in INTS]
    # A histogram shorter than today's buckets (written with other bounds, or by hand)
    # reads as zeros in its missing buckets rather than failing every org's job.
    int_values += [
        total(f"coalesce(latency_histogram[{i + 1}], 0)", "int8") for i in range(len(HIST))
    ]
    float_values = [total(c, "float8") for c in _FLOATS]
    group = ""
    if grouped:
        group = "GROUP BY " + ", ".join([*([] if step is None else [bucket]), "org_id", *by])
    return f"""
SELECT {bucket} AS bucket_start, org_id::text AS org_id, {"".join(f"{c}, " for c in by)}
       ARRAY[{", ".join(int_values)}] AS ints, ARRAY[{", ".join(float_values)}] AS floats
FROM request_rollups
WHERE bucket_start >= $1 AND bucket_start < $2 {"AND org_id = ANY($3::uuid[])" if of_orgs else ""}
{group}
"""


def empty(by: Sequence[str] = KEYS[2:]) -> pd.DataFrame:
    return pd.DataFrame(columns=["bucket_start", "org_id", *by, *COUNTS, *HIST])


async def load(
    conn: asyncpg.Connection,
    since: datetime,
    until: datetime,
    *,
    org_ids: Sequence[str] | None = None,
    by: Sequence[str] = KEYS[2:],
    step: Step = "hour",
) -> pd.DataFrame:
    """Rollups with ``since <= bucket_start < until`` (of ``org_ids`` only, when given),
    added up by Postgres per org, the key columns ``by`` and ``step``: ``"hour"`` (each
    stored bucket), ``"day"`` (UTC days; the first starts at ``since``) or None (the whole
    range; ``bucket_start`` is then the first hour with traffic). Ask for the fewest keys
    and the coarsest step a job needs: the rows Postgres sends, not the rows it reads, are
    what costs. ``org_id`` is text; ``cost_usd`` a float (summed exactly, then USD)."""
    by = tuple(by)
    unknown = set(by) - set(KEYS[2:])
    if unknown:
        raise ValueError(f"not rollup keys: {sorted(unknown)}")
    query = _query(by, step, org_ids is not None)
    args: list[object] = [since, until]
    if org_ids is not None:
        args.append(list(org_ids))
    rows = await conn.fetch(query, *args)
    if not rows:
        return empty(by)
    columns = ["bucket_start", "org_id", *by]
    keys = pd.DataFrame({c: [r[i] for r in rows] for i, c in enumerate(columns)})
    ints = np.array([r["ints"] for r in rows], dtype=np.int64)
    floats = np.array([r["floats"] for r in rows], dtype=np.float64)
    frame = pd.concat(
        [
            keys,
            pd.DataFrame(ints, columns=[*INTS, *HIST]),
            pd.DataFrame(floats, columns=list(_FLOATS)),
        ],
        axis=1,
    )
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
