"""Pipeline health over a period, from ``pipeline_health``: what the proxies dropped.

Proxies report counters that are totals since their process started, every few seconds.
The events of a period are the sum, per instance, of the increases between consecutive
rows (by ``recorded_at``) recorded in the period; the first row of a period is compared
with that instance's last row before it, when there is one (otherwise its whole value
counts: the process started then). A counter lower than the row before means the process
restarted, and the new value is what the new process counted. All of that is one SQL
window function; Postgres returns a row per period and instance.

Proxies serve every org, so these figures are global: computed once per period per run
and shown on every org's summary. The ingest lag is the most recent measured one from a
consumer's row (rows of idle consumers carry none).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

_DELTAS_SQL = """
WITH rows AS (
    SELECT instance, recorded_at, events_dropped, events_published,
           lag(events_dropped) OVER w AS prev_dropped,
           lag(events_published) OVER w AS prev_published
    FROM pipeline_health
    WHERE component = 'proxy' AND recorded_at < $3
    WINDOW w AS (PARTITION BY instance ORDER BY recorded_at, id)
), deltas AS (
    SELECT instance, recorded_at,
           CASE WHEN prev_dropped IS NULL OR events_dropped < prev_dropped
                THEN events_dropped ELSE events_dropped - prev_dropped END AS dropped,
           CASE WHEN prev_published IS NULL OR events_published < prev_published
                THEN events_published ELSE events_published - prev_published END AS published
    FROM rows
)
SELECT p.period, d.instance,
       coalesce(sum(d.dropped), 0)::bigint AS dropped,
       coalesce(sum(d.published), 0)::bigint AS published
FROM deltas d
JOIN unnest($1::text[], $2::timestamptz[]) AS p(period, since) ON d.recorded_at >= p.since
GROUP BY p.period, d.instance
"""

_LAG_SQL = """
SELECT recorded_at, ingest_lag_ms FROM pipeline_health
WHERE component = 'consumer' AND ingest_lag_ms IS NOT NULL
  AND recorded_at >= $1 AND recorded_at < $2
ORDER BY recorded_at DESC, id DESC
LIMIT 1
"""


def _empty() -> dict[str, Any]:
    return {"events_dropped": 0, "events_published": 0, "by_instance": {}}


async def pipeline_summaries(
    conn: asyncpg.Connection, windows: Mapping[str, tuple[datetime, datetime]]
) -> dict[str, dict[str, Any]]:
    """The ``pipeline`` part of the summary of each period in ``windows`` (period ->
    (start, end); every end is the same, the end of the current hour)."""
    periods = list(windows)
    end = max(until for _, until in windows.values())
    starts = [windows[p][0] for p in periods]
    totals = {period: _empty() for period in periods}
    for row in await conn.fetch(_DELTAS_SQL, periods, starts, end):
        total = totals[row["period"]]
        total["events_dropped"] += row["dropped"]
        total["events_published"] += row["published"]
        if row["dropped"]:
            total["by_instance"][row["instance"]] = row["dropped"]
    lag = await conn.fetchrow(_LAG_SQL, min(starts), end)
    out = {}
    for period in periods:
        total = totals[period]
        dropped, published = total["events_dropped"], total["events_published"]
        seen = lag is not None and lag["recorded_at"] >= windows[period][0]
        out[period] = {
            "events_dropped": dropped,
            "events_published": published,
            "drop_rate": round(dropped / (dropped + published), 6) if dropped else 0.0,
            "dropped_by_instance": dict(sorted(total["by_instance"].items())),
            "ingest_lag_ms": round(lag["ingest_lag_ms"], 1) if seen else None,
            "ingest_lag_at": lag["recorded_at"].isoformat() if seen else None,
        }
    return out
