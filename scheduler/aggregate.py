"""The ``aggregate`` job: one ``dashboard_summaries`` row per org and period.

Periods are whole UTC hourly buckets ending with the current (partial) hour ``H``:
``24h`` is ``[H-23h, H+1h)``, ``7d`` 168 buckets, ``30d`` 720. The job reads only
``organizations``, ``request_rollups`` and ``pipeline_health``, never ``request_logs``, so
its cost follows the number of rollup rows (keys x hours), not of requests.

Orgs are processed in batches of :data:`ORG_BATCH`, so memory stays bounded whatever
the number of orgs. For each batch Postgres adds the rollups up twice, over the keys the
summaries break down by: per UTC day over 30 days (the ``30d`` period), and per hour
over 7 days (``7d``, and ``24h`` as a slice of it). Every org gets its three rows,
zeros when it had no traffic.
See :mod:`scheduler.summary_stats` for the figures and :mod:`scheduler.pipeline` for the
pipeline part, which is global and computed once per period per run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from scheduler import rollups, summary_stats
from scheduler.anomalies import MIN_HISTORY
from scheduler.job import JobContext, JobResult
from scheduler.pipeline import pipeline_summaries
from scheduler.rollups import HOUR, hour_start

# period -> hourly buckets it covers, the current one included
PERIODS = {"24h": 24, "7d": 168, "30d": 720}
DAILY_SERIES = frozenset({"30d"})
# The rollup keys the summaries break down by (with org_id).
SUMMARY_KEYS = ("feature", "provider", "model", "task_type")
ORG_BATCH = 50

_ORGS_SQL = """
SELECT o.id::text AS id, o.p95_latency_threshold_ms,
       (SELECT min(r.bucket_start) FROM request_rollups r
        WHERE r.org_id = o.id AND r.bucket_start < $1) AS data_since
FROM organizations o
ORDER BY o.id
"""

_UPSERT_SQL = """
INSERT INTO dashboard_summaries (org_id, period, window_start, window_end, data, computed_at)
VALUES ($1::uuid, $2, $3, $4, $5::jsonb, $6)
ON CONFLICT (org_id, period) DO UPDATE
SET window_start = EXCLUDED.window_start, window_end = EXCLUDED.window_end,
    data = EXCLUDED.data, computed_at = EXCLUDED.computed_at
"""


@dataclass(frozen=True)
class Org:
    id: str
    p95_threshold_ms: int
    # The start of the org's first rollup bucket (any time before the window's end).
    data_since: datetime | None


def windows(now: datetime) -> dict[str, tuple[datetime, datetime]]:
    """Period -> (window_start, window_end) for the clock reading ``now``."""
    end = hour_start(now) + HOUR
    return {period: (end - hours * HOUR, end) for period, hours in PERIODS.items()}


def anomaly_detection(org: Org, now: datetime) -> dict[str, Any]:
    """Whether the anomaly detector judges this org yet: it needs the org's first bucket
    to be at least 48 hours before the current hour's start (it judges the last full
    hour against the days before it)."""
    if org.data_since is None:
        return {"active": False, "data_since": None, "active_in_hours": None}
    ready_at = org.data_since + MIN_HISTORY
    current = hour_start(now)
    hours = max(0, -(-(ready_at - current) // HOUR))
    return {
        "active": hours == 0,
        "data_since": org.data_since.isoformat(),
        "active_in_hours": hours,
    }


async def run(ctx: JobContext) -> JobResult:
    """Write (upsert) every org's summaries for ``ctx.now()``."""
    now = ctx.now()
    spans = windows(now)
    end = spans["30d"][1]
    async with ctx.pool.acquire() as conn:
        orgs = [
            Org(r["id"], r["p95_latency_threshold_ms"], r["data_since"])
            for r in await conn.fetch(_ORGS_SQL, end)
        ]
        pipeline = await pipeline_summaries(conn, spans)
    written = 0
    for first in range(0, len(orgs), ORG_BATCH):
        batch = orgs[first : first + ORG_BATCH]
        async with ctx.pool.acquire() as conn:
            ids = [o.id for o in batch]
            # Postgres adds the rollups up by day for 30d and by hour for the week that
            # the 7d and 24h periods cover, over the keys the summaries break down by.
            frames = {
                "30d": await rollups.load(
                    conn, spans["30d"][0], end, org_ids=ids, by=SUMMARY_KEYS, step="day"
                ),
                "7d": await rollups.load(
                    conn, spans["7d"][0], end, org_ids=ids, by=SUMMARY_KEYS, step="hour"
                ),
            }
            # pandas work off the event loop, so /metrics and other jobs' ticks stay on time.
            rows = await asyncio.to_thread(summary_rows, frames, batch, spans, pipeline, now)
            async with conn.transaction():
                await conn.executemany(_UPSERT_SQL, rows)
        written += len(rows)
    return JobResult(wrote={"summaries": written, "orgs": len(orgs)})


def summary_rows(
    frames: dict[str, pd.DataFrame],
    orgs: Sequence[Org],
    spans: dict[str, tuple[datetime, datetime]],
    pipeline: dict[str, dict[str, Any]],
    now: datetime,
) -> list[tuple[Any, ...]]:
    """The ``dashboard_summaries`` rows (upsert parameters) of ``orgs``, from their
    rollups (as :func:`scheduler.rollups.load` returns them): ``frames["30d"]`` by day
    over 30 days, ``frames["7d"]`` by hour over 7 days (24h is a slice of it)."""
    daily = summary_stats.prepare(frames["30d"])
    hourly = summary_stats.prepare(frames["7d"])
    org_ids = [o.id for o in orgs]
    thresholds = {o.id: o.p95_threshold_ms for o in orgs}
    detection = {o.id: anomaly_detection(o, now) for o in orgs}
    rows = []
    for period, (start, end) in spans.items():
        frame = daily if period in DAILY_SERIES else hourly
        sub = frame[frame["bucket_start"] >= pd.Timestamp(start)]
        data = summary_stats.totals(sub, org_ids, thresholds)
        for name, column in summary_stats.BREAKDOWNS.items():
            for org_id, entries in summary_stats.breakdown(sub, column, org_ids).items():
                data[org_id][name] = entries
        by_day = period in DAILY_SERIES
        starts = summary_stats.point_starts(start, end, daily=by_day)
        for org_id, points in summary_stats.series(sub, org_ids, starts, daily=by_day).items():
            data[org_id]["series_step"] = "day" if by_day else "hour"
            data[org_id]["series"] = points
        for org_id in org_ids:
            data[org_id]["pipeline"] = pipeline[period]
            data[org_id]["anomaly_detection"] = detection[org_id]
            rows.append((org_id, period, start, end, json.dumps(data[org_id]), now))
    return rows
