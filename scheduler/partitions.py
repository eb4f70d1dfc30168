"""The ``partitions`` job: keep ``request_logs`` partitioned ahead and within retention.

- Daily partitions exist from today (UTC) through ``LECTR_PARTITIONS_AHEAD_DAYS`` ahead,
  so inserts land in their day, not in the default partition.
- A daily partition whose whole day ends at or before ``today - LECTR_RETENTION_DAYS``
  is detached, then dropped (one transaction each, logged). Only daily partitions
  (``request_logs_pYYYYMMDD``) are considered: the default partition and any other
  table attached by hand are never touched. Rollups, summaries, anomalies and
  recommendations are separate tables and keep their history.
- ``pipeline_health`` rows older than ``LECTR_HEALTH_RETENTION_DAYS`` are deleted, and
  ``scheduler_runs`` rows older than :data:`RUNS_RETENTION_DAYS` (each job's newest row
  is kept: it is what stops an instance from re-running an older tick).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, timedelta

import asyncpg

from scheduler.job import JobContext, JobResult
from schema import partitions
from schema.partitions import (
    LIST_PARTITIONS_SQL,
    PARENT,
    days_to_cover,
    drop_partition_sql,
    ensure_partitions,
    partition_day,
)

log = logging.getLogger(__name__)

RUNS_RETENTION_DAYS = 30
# Detaching takes a brief exclusive lock on request_logs; rather than queue behind a
# long transaction (and make inserts queue behind us), give up and retry next run.
LOCK_TIMEOUT = "5s"

_DELETE_HEALTH = "DELETE FROM pipeline_health WHERE recorded_at < $1"
_DELETE_RUNS = """
DELETE FROM scheduler_runs AS old
WHERE old.started_at < $1
  AND old.tick_start < (SELECT max(tick_start) FROM scheduler_runs WHERE job = old.job)
"""
_ATTACHED = f"""
SELECT EXISTS (SELECT 1 FROM pg_inherits
               WHERE inhrelid = to_regclass($1) AND inhparent = '{PARENT}'::regclass)
"""


def expired(names: list[str], cutoff: date) -> list[tuple[str, date]]:
    """The daily partitions among ``names`` whose day ends at or before ``cutoff``."""
    days = ((name, partition_day(name)) for name in names)
    return [(name, day) for name, day in days if day is not None and day < cutoff]


async def run(ctx: JobContext) -> JobResult:
    now = ctx.now()
    today = now.astimezone(UTC).date()
    settings = ctx.scheduler
    result = JobResult()
    async with ctx.pool.acquire() as conn:
        created = await ensure_partitions(
            conn, days_to_cover(today, settings.partitions_ahead_days)
        )
        for name in created:
            log.info("created partition %s", name)
        dropped = await _drop_expired(conn, today - timedelta(days=settings.retention_days), result)
        health = await conn.execute(
            _DELETE_HEALTH, now - timedelta(days=settings.health_retention_days)
        )
        runs = await conn.execute(_DELETE_RUNS, now - timedelta(days=RUNS_RETENTION_DAYS))
    result.wrote = {
        "partitions_created": len(created),
        "partitions_dropped": dropped,
        "health_rows_deleted": _count(health),
        "runs_deleted": _count(runs),
    }
    return result


async def _drop_expired(conn: asyncpg.Connection, cutoff: date, result: JobResult) -> int:
    """Detach and drop each daily partition wholly before ``cutoff``; return how many."""
    names = [row[0] for row in await conn.fetch(LIST_PARTITIONS_SQL)]
    dropped = 0
    for name, day in expired(names, cutoff):
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", partitions.PARTITION_LOCK_ID)
                await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                if not await conn.fetchval(_ATTACHED, name):
                    continue  # another run dropped it meanwhile
                await conn.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {name}")
                await conn.execute(drop_partition_sql(day))
        except asyncpg.LockNotAvailableError:
            log.warning("partition %s is busy; dropping it at the next run", name)
            result.notes.append(f"{name} busy, retried next run")
            continue
        dropped += 1
        log.info("dropped partition %s: rows of %s are past the retention (before %s)",
                 name, day.isoformat(), cutoff.isoformat())  # fmt: skip
    return dropped


def _count(status: str) -> int:
    """Rows affected, from a command status such as ``DELETE 40``."""
    return int(status.rsplit(" ", 1)[-1])
