"""Writing recommendations: one row per org x feature x provider x current model x target.

What users see must stay stable from run to run, so a run reconciles rather than
appends, inside one transaction per batch of orgs:

* a wanted recommendation whose row is ``open`` or ``retired`` is refreshed and
  (re)opened; with no row, one is inserted;
* a row the user ``dismissed`` (or marked ``applied``) is left exactly as it is, and
  never re-opened for the same target;
* every other ``open`` row of those orgs is ``retired``: its conditions no longer hold
  (traffic fell under the minimum, turned to reasoning, a different target is now
  recommended, the saving is gone, ...).

The upsert's ``WHERE`` re-checks the status, so a dismissal made while the job runs wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

Key = tuple[str, str, str, str, str]
"""org id, feature, provider, current model, recommended model."""

LEFT_ALONE = ("dismissed", "applied")

_EXISTING_SQL = """
SELECT id, org_id::text AS org_id, feature, provider, current_model, recommended_model, status
FROM recommendations
WHERE org_id = ANY($1::uuid[])
"""

_UPSERT_SQL = """
INSERT INTO recommendations (
    org_id, feature, task_type, provider, current_model, recommended_model, steps,
    window_start, window_end, request_count, current_cost_usd, projected_cost_usd,
    projected_savings_usd, rationale, confidence, details, status, created_at, updated_at
)
VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16::jsonb,
        'open', $17, $17)
ON CONFLICT (org_id, feature, provider, current_model, recommended_model) DO UPDATE SET
    task_type = EXCLUDED.task_type,
    steps = EXCLUDED.steps,
    window_start = EXCLUDED.window_start,
    window_end = EXCLUDED.window_end,
    request_count = EXCLUDED.request_count,
    current_cost_usd = EXCLUDED.current_cost_usd,
    projected_cost_usd = EXCLUDED.projected_cost_usd,
    projected_savings_usd = EXCLUDED.projected_savings_usd,
    rationale = EXCLUDED.rationale,
    confidence = EXCLUDED.confidence,
    details = EXCLUDED.details,
    status = 'open',
    updated_at = EXCLUDED.updated_at
WHERE recommendations.status IN ('open', 'retired')
"""

_RETIRE_SQL = """
UPDATE recommendations SET status = 'retired', updated_at = $2
WHERE id = ANY($1::uuid[]) AND status = 'open'
"""


@dataclass(frozen=True)
class Row:
    """The values of one recommendation row (``details`` already JSON text)."""

    org_id: str
    feature: str
    task_type: str | None
    provider: str
    current_model: str
    recommended_model: str
    steps: int
    window_start: datetime
    window_end: datetime
    request_count: int
    current_cost_usd: Decimal
    projected_cost_usd: Decimal
    projected_savings_usd: Decimal
    rationale: str
    confidence: str
    details: str

    @property
    def key(self) -> Key:
        return (self.org_id, self.feature, self.provider, self.current_model,
                self.recommended_model)  # fmt: skip

    def params(self, now: datetime) -> tuple[object, ...]:
        return (
            self.org_id, self.feature, self.task_type, self.provider, self.current_model,
            self.recommended_model, self.steps, self.window_start, self.window_end,
            self.request_count, self.current_cost_usd, self.projected_cost_usd,
            self.projected_savings_usd, self.rationale, self.confidence, self.details, now,
        )  # fmt: skip


@dataclass(frozen=True)
class Saved:
    opened: int = 0
    updated: int = 0
    retired: int = 0


async def save(
    conn: asyncpg.Connection, org_ids: Sequence[str], rows: Sequence[Row], now: datetime
) -> Saved:
    """Reconcile the recommendations of ``org_ids`` with ``rows``, the ones wanted now
    (see the module docstring). Call inside a transaction."""
    existing = {
        (r["org_id"], r["feature"], r["provider"], r["current_model"], r["recommended_model"]): r
        for r in await conn.fetch(_EXISTING_SQL, list(org_ids))
    }
    opened = updated = 0
    writes = []
    for row in rows:
        before = existing.get(row.key)
        if before is not None and before["status"] in LEFT_ALONE:
            continue
        writes.append(row.params(now))
        if before is not None and before["status"] == "open":
            updated += 1
        else:
            opened += 1
    if writes:
        await conn.executemany(_UPSERT_SQL, writes)
    wanted = {row.key for row in rows}
    stale = [r["id"] for key, r in existing.items() if r["status"] == "open" and key not in wanted]
    retired = 0
    if stale:
        status = await conn.execute(_RETIRE_SQL, stale, now)
        retired = int(status.split()[-1])
    return Saved(opened, updated, retired)
