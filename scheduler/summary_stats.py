"""The numbers of a dashboard summary, computed with pandas from rollup frames.

Everything here is pure: a frame from :func:`scheduler.rollups.load` (prepared once with
:func:`prepare`) goes in, plain JSON-ready values come out, one entry per org. Merging
rollups is adding their counts and histograms, so every figure is a ``groupby(...).sum()``
and percentiles are read from the merged histograms (:func:`scheduler.rollups.percentiles`).

Cost is summed exactly: each rollup's ``cost_usd`` (``NUMERIC(20, 8)``, loaded as a float)
is turned back into whole units of 1e-8 USD, which a float holds exactly up to about
90 million USD per rollup row, and those integers are added. The JSON value is the float
nearest to the exact sum, so it rounds to the same 6 decimals as SQL's ``sum(cost_usd)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from scheduler.rollups import HIST, INTS, percentiles

COST_UNITS_PER_USD = 100_000_000
# Entries kept per breakdown list; the rest are folded into one entry with key None.
BREAKDOWN_CAP = 50
UNTAGGED_TASK = "untagged"
UNKNOWN_MODEL = "unknown"
# breakdown name -> rollup column it groups on
BREAKDOWNS = {
    "by_model": "model",
    "by_feature": "feature",
    "by_provider": "provider",
    "by_task": "task_type",
}
_INTS = INTS
_FLOATS = ("latency_ms_sum", "ttfb_ms_sum")
SUMS = [*_INTS, *_FLOATS, "cost_units", *HIST]
# What a breakdown entry or a series point needs.
SMALL = ["request_count", "error_count", "cost_units", *HIST]

Row = dict[str, Any]


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns the summaries read, with numeric types (an empty frame from
    :func:`scheduler.rollups.load` has object columns) and the cost in whole 1e-8 USD
    units (``cost_units``); ``''`` models and task types get their display names. The
    integer columns form one block, so each ``groupby(...).sum()`` is one pass."""
    keys = pd.DataFrame(
        {
            "bucket_start": pd.to_datetime(frame["bucket_start"], utc=True),
            "org_id": frame["org_id"].astype(str),
            "feature": frame["feature"].astype(str),
            "provider": frame["provider"].astype(str),
            "model": frame["model"].astype(str).replace("", UNKNOWN_MODEL),
            "task_type": frame["task_type"].astype(str).replace("", UNTAGGED_TASK),
        }
    )
    # Categories: every later groupby reuses the codes instead of hashing strings again.
    for column in ("org_id", *BREAKDOWNS.values()):
        keys[column] = keys[column].astype("category")
    cost = np.rint(frame["cost_usd"].to_numpy(dtype=np.float64) * COST_UNITS_PER_USD)
    ints = np.column_stack(
        [
            *(frame[c].to_numpy(dtype=np.int64) for c in _INTS),
            cost.astype(np.int64),
            frame[list(HIST)].to_numpy(dtype=np.int64).reshape(len(frame), len(HIST)),
        ]
    )
    floats = np.column_stack([frame[c].to_numpy(dtype=np.float64) for c in _FLOATS])
    return pd.concat(
        [
            keys,
            pd.DataFrame(ints, columns=[*_INTS, "cost_units", *HIST], index=keys.index),
            pd.DataFrame(
                floats.reshape(len(frame), len(_FLOATS)), columns=_FLOATS, index=keys.index
            ),
        ],
        axis=1,
    )


def usd(cost_units: int | np.integer) -> float:
    """Whole 1e-8 USD units as the nearest float in USD."""
    return int(cost_units) / COST_UNITS_PER_USD


def _number(value: float | None, digits: int) -> float | None:
    """A JSON number rounded to ``digits`` decimals; None for NaN/None."""
    if value is None or math.isnan(value):
        return None
    return round(float(value), digits)


def _ratio(part: float, whole: float) -> float:
    return round(float(part) / float(whole), 6) if whole else 0.0


def _p95(frame: pd.DataFrame) -> np.ndarray:
    return percentiles(frame[list(HIST)].to_numpy(), 0.95)


def totals(
    sub: pd.DataFrame, org_ids: Sequence[str], thresholds_ms: dict[str, int]
) -> dict[str, Row]:
    """The headline figures of each org over the rows of ``sub``; an org without rows
    gets zeros, and None where a mean or percentile has nothing to read."""
    sums = sub.groupby("org_id", observed=True)[SUMS].sum().reindex(list(org_ids), fill_value=0)
    hist = sums[list(HIST)].to_numpy()
    p50, p95 = percentiles(hist, 0.5), percentiles(hist, 0.95)
    out: dict[str, Row] = {}
    for i, (org_id, row) in enumerate(sums.iterrows()):
        requests = int(row["request_count"])
        threshold = thresholds_ms[str(org_id)]
        p95_ms = _number(p95[i], 2)
        out[str(org_id)] = {
            "requests": requests,
            "errors": int(row["error_count"]),
            "error_rate": _ratio(row["error_count"], requests),
            "cost_usd": usd(row["cost_units"]),
            "unpriced_requests": int(row["unpriced_count"]),
            "input_tokens": int(row["input_tokens"]),
            "output_tokens": int(row["output_tokens"]),
            "cached_tokens": int(row["cached_tokens"]),
            "latency_mean_ms": _number(row["latency_ms_sum"] / requests, 2) if requests else None,
            "latency_p50_ms": _number(p50[i], 2),
            "latency_p95_ms": p95_ms,
            "ttfb_mean_ms": (
                _number(row["ttfb_ms_sum"] / row["ttfb_count"], 2) if row["ttfb_count"] else None
            ),
            "streaming_share": _ratio(row["streaming_count"], requests),
            "tokeniser_share": _ratio(row["tokeniser_count"], requests),
            "p95_threshold_ms": threshold,
            "p95_over_threshold": p95_ms is not None and p95_ms > threshold,
        }
    return out


def _records(grouped: pd.DataFrame) -> list[Row]:
    """``requests``, ``errors``, ``cost_usd`` and ``p95_ms`` of each row of ``grouped``
    (sums of :data:`SMALL`), in order; built column-wise, as there can be many."""
    p95 = np.round(_p95(grouped), 2).tolist()
    cost = (grouped["cost_units"].to_numpy() / COST_UNITS_PER_USD).tolist()
    return [
        {"requests": n, "errors": e, "cost_usd": c, "p95_ms": None if math.isnan(p) else p}
        for n, e, c, p in zip(
            grouped["request_count"].tolist(),
            grouped["error_count"].tolist(),
            cost,
            p95,
            strict=True,
        )
    ]


def breakdown(sub: pd.DataFrame, column: str, org_ids: Sequence[str]) -> dict[str, list[Row]]:
    """Per org, one entry per value of ``column``, most requests first (ties by key).
    Past :data:`BREAKDOWN_CAP` entries the rest are merged into one last entry with key
    None and ``folded_keys`` (how many keys it holds), so a summary stays small."""
    out: dict[str, list[Row]] = {org_id: [] for org_id in org_ids}
    if sub.empty:
        return out
    groups = sub.groupby(["org_id", column], observed=True, sort=False)[SMALL].sum().reset_index()
    groups = groups.sort_values(
        ["org_id", "request_count", column], ascending=[True, False, True], kind="stable"
    )
    folded = groups.groupby("org_id", observed=True).cumcount().to_numpy() >= BREAKDOWN_CAP
    kept, rest = groups[~folded], groups[folded]
    for org_id, key, record in zip(
        kept["org_id"].tolist(), kept[column].tolist(), _records(kept), strict=True
    ):
        out[org_id].append({"key": key, **record})
    if not rest.empty:
        others = rest.groupby("org_id", observed=True)[SMALL].sum()
        sizes = rest.groupby("org_id", observed=True).size().tolist()
        for org_id, size, record in zip(others.index, sizes, _records(others), strict=True):
            out[str(org_id)].append({"key": None, **record, "folded_keys": size})
    return out


def series(
    sub: pd.DataFrame, org_ids: Sequence[str], starts: pd.DatetimeIndex, *, daily: bool
) -> dict[str, list[Row]]:
    """Per org, one point per start in ``starts`` (every one, zeros when empty): hourly
    buckets, or with ``daily`` UTC calendar days, the first one starting at the window's
    start (``starts[0]``) rather than at midnight."""
    point = sub["bucket_start"]
    if daily:
        point = point.dt.floor("D")
        point = point.where(point >= starts[0], starts[0])
    grouped = sub.assign(point=point).groupby(["org_id", "point"], observed=True)[SMALL].sum()
    full = pd.MultiIndex.from_product([list(org_ids), starts], names=["org_id", "point"])
    records = _records(grouped.reindex(full, fill_value=0))
    labels = [start.isoformat() for start in starts]
    size = len(starts)
    return {
        org_id: [
            {"start": label, **record}
            for label, record in zip(labels, records[i * size : (i + 1) * size], strict=True)
        ]
        for i, org_id in enumerate(org_ids)
    }


def point_starts(window_start: datetime, window_end: datetime, *, daily: bool) -> pd.DatetimeIndex:
    """The start of every series point of a window: each hour, or each UTC day (the
    first clipped to ``window_start``)."""
    if not daily:
        return pd.date_range(window_start, window_end, freq="h", inclusive="left")
    first = pd.Timestamp(window_start)
    days = pd.date_range(first.floor("D"), window_end, freq="D", inclusive="left")
    return pd.DatetimeIndex([first, *days[days > first]])
