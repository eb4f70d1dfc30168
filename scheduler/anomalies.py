"""The ``anomalies`` job: is the last full hour out of line with the week before it?

Every run (5 min by default) judges the window W = the last full UTC hour, per org
overall (``anomalies.feature`` NULL) and per org x feature, for five kinds (units as
stored in ``observed``, ``baseline``, ``baseline_stddev`` and ``threshold``):

- ``cost``: USD spent in the hour;
- ``latency``: the hour's p95 latency in ms, from merged rollup histograms;
- ``error_rate``: errors / requests (0..1);
- ``traffic``: requests in the hour (up and down);
- ``model_drift``: share (0..1) of requests answered by a ``response_model`` the
  baseline never saw answer the model they were sent for (after rules, so a rule's
  rewrite is not drift); ``model``/``provider`` name the sent model drifting most.

The baseline is the 168 hours before W, read from ``request_rollups`` only (orgs in
batches, so memory follows the batch, not the table). How values, sigma floors and guards
work: :mod:`scheduler.anomaly_series`, :mod:`scheduler.anomaly_baselines`; how rows
open, continue, resolve and stay dismissed: :mod:`scheduler.anomaly_episodes`.

Orgs that are disabled are not judged (no traffic is expected from them), nor orgs whose
first rollup is less than 48 h before the current hour ("building baseline"; the
result's note says when the first of them starts being judged).

Each row's ``details``: ``z``, ``sigma`` (S), ``baseline_std`` (before the floor),
``sigma_floor_applied``, ``baseline_hours``, ``window_requests``, ``direction``
(``up``/``down``), ``recent`` (the 24 hourly values before W and W's,
``[{"hour", "value"}]``), and for drift ``pairs`` (``[{"provider", "model",
"response_model", "requests"}]``, the new pairs of the window).

After detection, :func:`scheduler.alerts.deliver` sends what was newly opened.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pandas as pd

from scheduler import alerts
from scheduler import anomaly_episodes as episodes
from scheduler.anomaly_baselines import judge
from scheduler.anomaly_series import PAIR, SCOPE, HourlyValues, hourly_values
from scheduler.job import JobContext, JobResult
from scheduler.rollups import HOUR, hour_start, load

BASELINE_HOURS = 168
MIN_HISTORY = timedelta(hours=48)
ORG_BATCH = 50

_ORGS_SQL = """
SELECT o.id::text AS org_id,
       (SELECT min(r.bucket_start) FROM request_rollups r WHERE r.org_id = o.id) AS first_bucket
FROM organizations o
WHERE o.status = 'active' AND ($1::uuid[] IS NULL OR o.id = ANY($1::uuid[]))
ORDER BY o.id
"""


@dataclass(frozen=True)
class Window:
    """The hour judged, [start, end), and the baseline hours before it."""

    start: datetime
    end: datetime

    @classmethod
    def before(cls, now: datetime) -> Window:
        end = hour_start(now)
        return cls(end - HOUR, end)

    @property
    def baseline_start(self) -> datetime:
        return self.start - BASELINE_HOURS * HOUR

    @property
    def hours(self) -> pd.DatetimeIndex:
        """The baseline hours, then the window's."""
        return pd.date_range(self.baseline_start, periods=BASELINE_HOURS + 1, freq=HOUR)


async def run(ctx: JobContext) -> JobResult:
    """Detect, then deliver alerts for what was opened."""
    result = await detect(ctx)
    outcome = await alerts.deliver(ctx)
    result.wrote.update(outcome.wrote)
    result.notes.extend(outcome.notes)
    return result


async def detect(ctx: JobContext, org_ids: Sequence[str] | None = None) -> JobResult:
    """Judge the last full hour of every active org (of ``org_ids`` only, when given)
    and write the anomaly rows; sends nothing."""
    now = ctx.now()
    window = Window.before(now)
    wrote = dict.fromkeys(("orgs_judged", "orgs_skipped", "opened", "updated", "resolved"), 0)
    async with ctx.pool.acquire() as conn:
        ids = None if org_ids is None else [str(org_id) for org_id in org_ids]
        orgs = await conn.fetch(_ORGS_SQL, ids)
        ready = [r["org_id"] for r in orgs if _has_history(r["first_bucket"], window)]
        wrote["orgs_judged"] = len(ready)
        wrote["orgs_skipped"] = len(orgs) - len(ready)
        for start in range(0, len(ready), ORG_BATCH):
            changed = await _detect(conn, ctx, ready[start : start + ORG_BATCH], window, now)
            for name, count in changed.items():
                wrote[name] += count
    return JobResult(wrote=wrote, notes=_building_note(orgs, window))


def _has_history(first_bucket: datetime | None, window: Window) -> bool:
    return first_bucket is not None and first_bucket <= window.end - MIN_HISTORY


def _building_note(orgs: list[asyncpg.Record], window: Window) -> list[str]:
    """When detection starts for orgs with data, but under 48 h of it: "building
    baseline for 2 orgs, the first judged in about 5 h"."""
    building = [
        r["first_bucket"]
        for r in orgs
        if r["first_bucket"] is not None and not _has_history(r["first_bucket"], window)
    ]
    if not building:
        return []
    hours = math.ceil((min(building) + MIN_HISTORY - window.end) / HOUR)
    orgs_text = "1 org" if len(building) == 1 else f"{len(building)} orgs"
    return [f"building baseline for {orgs_text}, the first judged in about {hours} h"]


async def _detect(
    conn: asyncpg.Connection, ctx: JobContext, org_ids: list[str], window: Window, now: datetime
) -> dict[str, int]:
    """Judge one batch of orgs and write what changed; counts by ``Action.counter``."""
    frame = await load(
        conn, window.baseline_start, window.end, org_ids=org_ids, by=(*SCOPE[1:], *PAIR)
    )
    if frame.empty:
        return {}
    known = await episodes.history(conn, org_ids, window.baseline_start)
    values = hourly_values(frame, window.hours)
    sigma = ctx.scheduler.anomaly_sigma
    verdicts = judge(
        values, known.excluded, sigma=sigma, min_requests=ctx.scheduler.anomaly_min_requests
    )
    changed: dict[str, int] = {}
    async with conn.transaction():
        for verdict in verdicts[verdicts["judged"]].itertuples(index=False):
            key = (verdict.org_id, verdict.feature, verdict.kind)
            action = episodes.decide(verdict.anomalous, key, known, window.start, window.end)
            if action is None:
                continue
            finding = _finding(verdict, values, sigma)
            if await episodes.apply(
                conn, action, key, known, finding, window=(window.start, window.end), now=now
            ):
                changed[action.counter] = changed.get(action.counter, 0) + 1
    return changed


def _finding(verdict: Any, values: HourlyValues, sigma: float) -> episodes.Finding:
    """The row's values and evidence for one verdict (a namedtuple of the verdicts)."""
    scope = (verdict.org_id, verdict.feature)
    details: dict[str, Any] = {
        "z": float(verdict.z),
        "sigma": sigma,
        "baseline_std": None if pd.isna(verdict.std) else float(verdict.std),
        "sigma_floor_applied": bool(verdict.floor_applied),
        "baseline_hours": int(verdict.baseline_hours),
        "window_requests": int(verdict.window_requests),
        "direction": "down" if verdict.z < 0 else "up",
        "recent": values.recent(scope, verdict.kind),
    }
    provider = model = None
    if verdict.kind == "model_drift":
        pairs = values.new_pairs
        mine = pairs[(pairs["org_id"] == scope[0]) & (pairs["feature"] == scope[1])]
        mine = mine.sort_values("requests", ascending=False)
        details["pairs"] = [
            {k: (int(v) if k == "requests" else v) for k, v in row.items() if k not in SCOPE}
            for row in mine.to_dict("records")
        ]
        if not mine.empty:
            worst = mine.groupby(["provider", "model"])["requests"].sum().idxmax()
            provider, model = worst
    return episodes.Finding(
        severity=verdict.severity,
        observed=float(verdict.observed),
        baseline=float(verdict.mean),
        stddev=float(verdict.sigma),
        threshold=float(verdict.threshold),
        details=details,
        provider=provider,
        model=model,
    )
