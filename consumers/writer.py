"""The SQL of a batch: one insert of the events, the rollups of what it inserted, the
health rows, all in one transaction.

Events go in with one ``INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING RETURNING
id``; the rollups are computed from the returned rows only, so an event delivered twice
(redelivery, two consumers, replay) is stored and counted once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from decimal import Decimal
from operator import attrgetter

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from consumers.rollups import Rollup, cost_changes, rollups
from schema.events import HealthSnapshot, RequestEvent
from schema.latency import BUCKET_COUNT
from schema.tables import ROLLUP_KEYS, ROLLUP_SUMS, request_logs

_DIALECT = postgresql.dialect()
COLUMNS: tuple[str, ...] = tuple(c.name for c in request_logs.columns)
# Strings go in as text: a cast to VARCHAR(n) would cut a long value silently, while an
# assignment raises (events are checked against the limits before, see consumers.validate).
_ARRAY_TYPES = tuple(
    "text" if isinstance(c.type, sa.String) else c.type.compile(dialect=_DIALECT)
    for c in request_logs.columns
)
_GETTERS = tuple(attrgetter(name) for name in COLUMNS)

INSERT_EVENTS_SQL = (
    f"INSERT INTO request_logs ({', '.join(COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${i}::{t}[]" for i, t in enumerate(_ARRAY_TYPES, start=1))
    + ") ON CONFLICT DO NOTHING RETURNING id"
)

_SUMS = ROLLUP_SUMS
_KEYS = ROLLUP_KEYS
_ROLLUP_TYPES = (
    ("timestamptz", "uuid", "text", "text", "text", "text", "text", "text")
    + ("int8",) * 6
    + ("numeric", "int8", "float8", "float8", "int8", "int8", "int8", "float8")
)
_ROLLUP_VALUES = (*_KEYS, *_SUMS, "latency_ms_max")
_HIST = len(_ROLLUP_VALUES) + 1
UPSERT_ROLLUPS_SQL = f"""
INSERT INTO request_rollups ({", ".join(_ROLLUP_VALUES)}, latency_histogram, updated_at)
SELECT {", ".join(f"r.{c}" for c in _ROLLUP_VALUES)},
       (${_HIST}::int8[])[(r.n - 1) * {BUCKET_COUNT} + 1 : r.n * {BUCKET_COUNT}],
       now()
FROM unnest({", ".join(f"${i}::{t}[]" for i, t in enumerate(_ROLLUP_TYPES, start=1))})
     WITH ORDINALITY AS r({", ".join(_ROLLUP_VALUES)}, n)
ORDER BY r.n
ON CONFLICT ({", ".join(_KEYS)}) DO UPDATE SET
{", ".join(f"{c} = request_rollups.{c} + EXCLUDED.{c}" for c in _SUMS)},
latency_ms_max = GREATEST(request_rollups.latency_ms_max, EXCLUDED.latency_ms_max),
latency_histogram = ARRAY(
    SELECT a + b FROM unnest(request_rollups.latency_histogram, EXCLUDED.latency_histogram)
    WITH ORDINALITY AS h(a, b, i) ORDER BY i),
updated_at = now()
"""

LOCK_COSTS_SQL = """
SELECT l.id, l.cost_usd FROM request_logs l
JOIN unnest($1::uuid[], $2::timestamptz[]) AS k(id, created_at)
  ON l.id = k.id AND l.created_at = k.created_at
FOR UPDATE OF l
"""

SET_COSTS_SQL = """
UPDATE request_logs l SET cost_usd = n.cost
FROM unnest($1::uuid[], $2::timestamptz[], $3::numeric[]) AS n(id, created_at, cost)
WHERE l.id = n.id AND l.created_at = n.created_at
"""

INSERT_HEALTH_SQL = """
INSERT INTO pipeline_health (recorded_at, component, instance, buffer_depth, events_published,
    events_dropped, publish_failures, ingest_lag_ms, details)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
"""


@dataclasses.dataclass(frozen=True)
class HealthRow:
    """A ``pipeline_health`` row: a proxy's snapshot, or the consumer's own with its lag."""

    snapshot: HealthSnapshot
    ingest_lag_ms: float | None = None


def unique_events(events: Iterable[RequestEvent]) -> list[RequestEvent]:
    """``events`` without repeats of an id (the first copy is kept)."""
    seen: set[object] = set()
    unique = []
    for event in events:
        if event.id not in seen:
            seen.add(event.id)
            unique.append(event)
    return unique


async def insert_events(
    conn: asyncpg.Connection, events: Sequence[RequestEvent]
) -> list[RequestEvent]:
    """Insert ``events`` (ids unique), add their rollups; return those that were new."""
    if not events:
        return []
    columns = [[get(e) for e in events] for get in _GETTERS]
    inserted_ids = {r[0] for r in await conn.fetch(INSERT_EVENTS_SQL, *columns)}
    inserted = [e for e in events if e.id in inserted_ids]
    await add_rollups(conn, rollups(inserted))
    return inserted


async def add_rollups(conn: asyncpg.Connection, deltas: Sequence[Rollup]) -> None:
    if not deltas:
        return
    columns: list[list[object]] = [[] for _ in _ROLLUP_VALUES]
    histograms: list[int] = []
    for delta in deltas:
        values = (*delta.key, *(getattr(delta, c) for c in _ROLLUP_VALUES[len(_KEYS) :]))
        for column, value in zip(columns, values, strict=True):
            column.append(value)
        histograms.extend(delta.latency_histogram)
    await conn.execute(UPSERT_ROLLUPS_SQL, *columns, histograms)


async def reprice_events(conn: asyncpg.Connection, events: Sequence[RequestEvent]) -> int:
    """Set stored rows' cost to the events' cost and move the rollups' cost with it.

    Call it inside a transaction. Returns how many rows changed; rows that are not
    stored are left alone.
    """
    if not events:
        return 0
    rows = await conn.fetch(LOCK_COSTS_SQL, [e.id for e in events], [e.created_at for e in events])
    old_costs: dict[object, Decimal | None] = {r["id"]: r["cost_usd"] for r in rows}
    changed = [e for e in events if e.id in old_costs and e.cost_usd != old_costs[e.id]]
    if not changed:
        return 0
    await conn.execute(
        SET_COSTS_SQL,
        [e.id for e in changed],
        [e.created_at for e in changed],
        [e.cost_usd for e in changed],
    )
    await add_rollups(conn, cost_changes((e, old_costs[e.id]) for e in changed))
    return len(changed)


async def insert_health(conn: asyncpg.Connection, rows: Sequence[HealthRow]) -> None:
    if not rows:
        return
    await conn.executemany(
        INSERT_HEALTH_SQL,
        [
            (
                r.snapshot.recorded_at,
                r.snapshot.component,
                r.snapshot.instance,
                r.snapshot.buffer_depth,
                r.snapshot.events_published,
                r.snapshot.events_dropped,
                r.snapshot.publish_failures,
                r.ingest_lag_ms,
                orjson.dumps(r.snapshot.details).decode(),
            )
            for r in rows
        ],
    )


async def write_batch(
    conn: asyncpg.Connection, events: Sequence[RequestEvent], health: Sequence[HealthRow] = ()
) -> list[RequestEvent]:
    """One transaction: the events, their rollups and the health rows. Returns the
    events that were new (the others were stored before)."""
    async with conn.transaction():
        inserted = await insert_events(conn, unique_events(events))
        await insert_health(conn, health)
    return inserted
