"""The ``partitions`` job: days made ahead, expired days dropped, nothing else touched.

It runs on a database of its own, migrated as of a day far from today, with a clock on
that day: dropping partitions of the shared test database would break other tests.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from lectr import migrations
from lectr.db import asyncpg_dsn
from scheduler import partitions as job
from schema.partitions import (
    LIST_PARTITIONS_SQL,
    day_bounds,
    ensure_partitions,
    partition_day,
    partition_name,
)
from tests.scheduler.conftest import job_context, new_org, request, store

TODAY = date(2031, 6, 15)
NOW = datetime(2031, 6, 15, 10, 30, tzinfo=UTC)


def ago(days: int) -> date:
    return TODAY - timedelta(days=days)


def noon(day: date) -> datetime:
    return day_bounds(day)[0] + timedelta(hours=12)


@pytest.fixture
async def own_pool(scratch_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a database migrated two days before TODAY (so partitions exist from
    TODAY - 2 to TODAY + 12)."""
    await asyncio.to_thread(migrations.migrate, scratch_database_url, today=ago(2))
    pool = await asyncpg.create_pool(asyncpg_dsn(scratch_database_url), min_size=0, max_size=2)
    assert pool is not None
    yield pool
    await pool.close()


async def _partitions(pool: asyncpg.Pool) -> set[str]:
    return {row[0] for row in await pool.fetch(LIST_PARTITIONS_SQL)}


async def _setup(pool: asyncpg.Pool) -> uuid.UUID:
    """Old days of request_logs with a row each, a partition attached by hand, history in
    the other tables, health rows and scheduler runs either side of their retention."""
    async with pool.acquire() as conn:
        await ensure_partitions(conn, [ago(92), ago(91), ago(90), ago(89)])
        await conn.execute(
            "CREATE TABLE request_logs_archive PARTITION OF request_logs "
            "FOR VALUES FROM ('2000-01-01') TO ('2000-02-01')"
        )
        org = await new_org(conn)
    # 91 days ago: expired. 90 days ago: its day ends 89 days ago, inside retention.
    # 200 days ago: no daily partition, so the default partition holds it.
    await store(pool, [request(org, noon(day)) for day in (ago(91), ago(90), ago(200))])
    await pool.execute(
        "INSERT INTO anomalies (org_id, kind, severity, window_start, window_end, observed) "
        "VALUES ($1, 'cost', 'warning', $2::timestamptz, $2::timestamptz + interval '1 hour', 4.2)",
        org,
        noon(ago(120)),
    )
    await pool.execute(
        "INSERT INTO dashboard_summaries (org_id, period, window_start, window_end, data) "
        "VALUES ($1, '30d', $2, $3, '{}')",
        org,
        NOW - timedelta(days=30),
        NOW,
    )
    for days in (15, 13):
        await pool.execute(
            "INSERT INTO pipeline_health (recorded_at, component, instance) "
            "VALUES ($1, 'consumer', $2)",
            NOW - timedelta(days=days),
            f"consumer-{days}d",
        )
    for name, days in (("aggregate", 40), ("aggregate", 35), ("aggregate", 1),
                       ("recommendations", 45)):  # fmt: skip
        at = NOW - timedelta(days=days)
        await pool.execute(
            "INSERT INTO scheduler_runs (job, tick_start, instance, started_at, status) "
            "VALUES ($1, $2, 'test:1', $2, 'ok')",
            name,
            at,
        )
    return org


async def test_days_ahead_are_made_expired_days_dropped_and_nothing_else_touched(
    own_pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    org = await _setup(own_pool)
    before = await _partitions(own_pool)
    caplog.set_level(logging.INFO, logger="scheduler.partitions")

    result = await job.run(job_context(own_pool, NOW))

    # Expired: every daily partition whose day ended 90 days ago or earlier, which
    # includes the days the first migration made around the real today.
    expired = {name for name in before if (day := partition_day(name)) and day < ago(90)}
    assert {partition_name(ago(92)), partition_name(ago(91))} <= expired
    assert result.wrote == {
        "partitions_created": 2,  # TODAY + 13 and TODAY + 14
        "partitions_dropped": len(expired),
        "health_rows_deleted": 1,
        "runs_deleted": 2,
    }
    after = await _partitions(own_pool)
    assert before - after == expired
    assert after - before == {partition_name(TODAY + timedelta(days=d)) for d in (13, 14)}
    assert {partition_name(TODAY + timedelta(days=d)) for d in range(15)} <= after
    assert {partition_name(ago(90)), "request_logs_archive", "request_logs_default"} <= after
    for name in expired:  # dropped, not merely detached
        assert await own_pool.fetchval("SELECT to_regclass($1)", name) is None
    dropped_lines = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped_lines) == len(expired)
    assert (
        f"dropped partition {partition_name(ago(91))}: rows of {ago(91)} are past the "
        f"retention (before {ago(90)})"
    ) in dropped_lines

    stored = await own_pool.fetch(
        "SELECT created_at FROM request_logs WHERE org_id = $1 ORDER BY created_at", org
    )
    assert [row["created_at"] for row in stored] == [noon(ago(200)), noon(ago(90))]
    # The rollups of every day keep their history, the dropped day's included.
    assert (
        await own_pool.fetchval(
            "SELECT sum(request_count) FROM request_rollups WHERE org_id = $1", org
        )
        == 3
    )
    assert await own_pool.fetchval("SELECT count(*) FROM anomalies WHERE org_id = $1", org) == 1
    assert (
        await own_pool.fetchval("SELECT count(*) FROM dashboard_summaries WHERE org_id = $1", org)
        == 1
    )
    assert await own_pool.fetchval("SELECT array_agg(instance) FROM pipeline_health") == [
        "consumer-13d"
    ]
    # Each job's newest run stays, however old: it is what orders the next claims.
    runs = await own_pool.fetch("SELECT job, started_at FROM scheduler_runs ORDER BY job")
    assert [(r["job"], (NOW - r["started_at"]).days) for r in runs] == [
        ("aggregate", 1),
        ("recommendations", 45),
    ]

    # A second run only adds what a longer horizon asks for.
    again = await job.run(job_context(own_pool, NOW, partitions_ahead_days=16))
    assert again.summary() == (
        "partitions_created=2 partitions_dropped=0 health_rows_deleted=0 runs_deleted=0"
    )
    assert await _partitions(own_pool) - after == {
        partition_name(TODAY + timedelta(days=d)) for d in (15, 16)
    }
