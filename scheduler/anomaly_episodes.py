"""Episodes: what the ``anomalies`` table already says, and how a verdict changes it.

There is at most one open anomaly per org x feature x kind (the unique index
``uq_anomalies_open_episode``). The job runs every few minutes over the same last full
hour, so every decision must be idempotent within an hour:

- anomalous, one open: the episode continues; its observed value, window_end, sigma,
  threshold and evidence follow the latest window, severity keeps the worst, and
  ``notified_at`` is left alone (one email per episode);
- anomalous, none open: a new open row, unless an anomaly of this scope and kind already
  covers the window (``window_end`` at or past its end: resolved or dismissed earlier in
  this hour is not reopened). A dismissed episode that reached the window's start is
  extended instead (dismissing an ongoing alert silences it until it ends);
- within range, one open: resolved (``resolved_at`` = now, the normal window in details);
- not judged (too few requests, too little history): nothing changes.

Dismissed anomalies also leave their hours out of the same kind's baseline
(:func:`history` returns them as ``excluded``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg
import orjson
import pandas as pd

from scheduler.anomaly_series import OVERALL
from scheduler.rollups import HOUR

Key = tuple[str, str, str]
"""org_id, feature (:data:`OVERALL` for the org overall), kind."""


class Action(StrEnum):
    """What a verdict does to the anomalies table."""

    OPEN = "open"
    UPDATE = "update"
    EXTEND_DISMISSED = "extend_dismissed"
    RESOLVE = "resolve"

    @property
    def counter(self) -> str:
        """The ``JobResult.wrote`` count a change adds to."""
        return {"open": "opened", "resolve": "resolved"}.get(self.value, "updated")


@dataclass(frozen=True)
class Stored:
    id: uuid.UUID
    status: str
    window_start: datetime
    window_end: datetime


@dataclass
class History:
    """The anomalies of a batch of orgs that matter for this run."""

    open: dict[Key, Stored] = field(default_factory=dict)
    # the latest window_end of an anomaly that is not open (resolved or dismissed)
    closed_until: dict[Key, datetime] = field(default_factory=dict)
    last_dismissed: dict[Key, Stored] = field(default_factory=dict)
    # hours out of a kind's baseline: org_id, feature, kind, bucket_start
    excluded: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["org_id", "feature", "kind", "bucket_start"])
    )


@dataclass(frozen=True)
class Finding:
    """What an anomalous window writes into its row."""

    severity: str
    observed: float
    baseline: float
    stddev: float
    threshold: float
    details: dict[str, Any]
    provider: str | None = None
    model: str | None = None


_HISTORY_SQL = """
SELECT id, org_id::text AS org_id, feature, kind, status, window_start, window_end
FROM anomalies
WHERE org_id = ANY($1::uuid[]) AND (status = 'open' OR window_end > $2)
"""


async def history(conn: asyncpg.Connection, org_ids: Sequence[str], since: datetime) -> History:
    """Open anomalies of ``org_ids`` and those whose window ends after ``since`` (the
    baseline's start): enough to decide, and to leave dismissed hours out."""
    found = History()
    excluded: list[tuple[str, str, str, pd.Timestamp]] = []
    for row in await conn.fetch(_HISTORY_SQL, list(org_ids), since):
        key = (row["org_id"], row["feature"] or OVERALL, row["kind"])
        stored = Stored(row["id"], row["status"], row["window_start"], row["window_end"])
        if stored.status == "open":
            found.open[key] = stored
            continue
        found.closed_until[key] = max(
            found.closed_until.get(key, stored.window_end), stored.window_end
        )
        if stored.status == "dismissed":
            last = found.last_dismissed.get(key)
            if last is None or last.window_end < stored.window_end:
                found.last_dismissed[key] = stored
            hours = pd.date_range(
                pd.Timestamp(stored.window_start).ceil(HOUR), stored.window_end, freq=HOUR,
                inclusive="left",
            )  # fmt: skip
            excluded.extend((*key, hour) for hour in hours)
    if excluded:
        found.excluded = pd.DataFrame(
            excluded, columns=["org_id", "feature", "kind", "bucket_start"]
        )
    return found


def decide(
    anomalous: bool, key: Key, known: History, start: datetime, end: datetime
) -> Action | None:
    """What a judged window [start, end) does to the episode of ``key``."""
    stored_open = known.open.get(key)
    if not anomalous:
        return Action.RESOLVE if stored_open else None
    if stored_open:
        return Action.UPDATE
    if key in known.closed_until and known.closed_until[key] >= end:
        return None
    dismissed = known.last_dismissed.get(key)
    if dismissed is not None and dismissed.window_end >= start:
        return Action.EXTEND_DISMISSED
    return Action.OPEN


_INSERT_SQL = """
INSERT INTO anomalies (org_id, feature, kind, status, severity, provider, model,
                       window_start, window_end, observed, baseline, baseline_stddev,
                       threshold, details, detected_at)
VALUES ($1::uuid, $2, $3, 'open', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14)
ON CONFLICT (org_id, feature, kind) WHERE status = 'open' DO NOTHING
"""

_UPDATE_SQL = """
UPDATE anomalies
SET severity = CASE WHEN severity = 'critical' THEN severity ELSE $2 END,
    provider = $3, model = $4, window_end = GREATEST(window_end, $5), observed = $6,
    baseline = $7, baseline_stddev = $8, threshold = $9, details = $10::jsonb
WHERE id = $1 AND status = 'open'
  AND (window_end < $5 OR observed <> $6 OR (severity = 'warning' AND $2 = 'critical'))
"""

_EXTEND_SQL = """
UPDATE anomalies SET window_end = $2
WHERE id = $1 AND status = 'dismissed' AND window_end < $2
"""

_RESOLVE_SQL = """
UPDATE anomalies SET status = 'resolved', resolved_at = $2, details = details || $3::jsonb
WHERE id = $1 AND status = 'open'
"""


async def apply(
    conn: asyncpg.Connection,
    action: Action,
    key: Key,
    known: History,
    finding: Finding,
    *,
    window: tuple[datetime, datetime],
    now: datetime,
) -> bool:
    """Write ``action``; True when a row changed."""
    start, end = window
    if action is Action.OPEN:
        org_id, feature, kind = key
        status = await conn.execute(
            _INSERT_SQL, org_id, None if feature == OVERALL else feature, kind,
            finding.severity, finding.provider, finding.model, start, end, finding.observed,
            finding.baseline, finding.stddev, finding.threshold, _json(finding.details), now,
        )  # fmt: skip
    elif action is Action.UPDATE:
        status = await conn.execute(
            _UPDATE_SQL, known.open[key].id, finding.severity, finding.provider, finding.model,
            end, finding.observed, finding.baseline, finding.stddev, finding.threshold,
            _json(finding.details),
        )  # fmt: skip
    elif action is Action.EXTEND_DISMISSED:
        status = await conn.execute(_EXTEND_SQL, known.last_dismissed[key].id, end)
    else:
        resolution = {
            "resolved_window_start": start.isoformat(),
            "resolved_observed": finding.observed,
        }
        status = await conn.execute(_RESOLVE_SQL, known.open[key].id, now, _json(resolution))
    return not status.endswith(" 0")


def _json(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
