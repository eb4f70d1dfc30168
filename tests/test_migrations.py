"""The schema: migrations up and down, partitioning, and tables that match the code."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from subprocess import PIPE

import asyncpg
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import create_async_engine

from lectr import migrations
from lectr.db import asyncpg_dsn, sqlalchemy_url
from schema import partitions
from schema.compare import include_name
from schema.reference_data import load_downgrades, load_pricing
from schema.tables import metadata
from tests.support.cli import LECTR

APP_TABLES = {t.name for t in metadata.sorted_tables}


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "UNION SELECT relname FROM pg_class WHERE relkind = 'p'"
        )
    finally:
        await conn.close()
    return {r[0] for r in rows}


async def test_upgrade_downgrade_upgrade(scratch_database_url: str) -> None:
    url = scratch_database_url
    await asyncio.to_thread(migrations.migrate, url)
    assert await _tables(url) >= APP_TABLES
    assert await migrations.current_revision(url) == migrations.head_revision()

    await asyncio.to_thread(migrations.downgrade, url, "base")
    assert await _tables(url) == {"alembic_version"}
    assert await migrations.current_revision(url) is None

    await asyncio.to_thread(migrations.upgrade, url)
    assert await _tables(url) >= APP_TABLES
    assert await migrations.current_revision(url) == migrations.head_revision()


async def test_two_processes_migrating_at_once_both_succeed(
    scratch_database_url: str, lectr_env: dict[str, str]
) -> None:
    env = {**lectr_env, "LECTR_DATABASE_URL": scratch_database_url}
    procs = [
        await asyncio.create_subprocess_exec(*LECTR, "migrate", env=env, stdout=PIPE, stderr=PIPE)
        for _ in range(2)
    ]
    outputs = [await proc.communicate() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    created = [out.decode() for out, _ in outputs if out.startswith(b"created")]
    assert len(created) == 1  # exactly one of them created the database
    assert await migrations.current_revision(scratch_database_url) == migrations.head_revision()


def _differences(target: sa.MetaData):
    def compare(connection):  # runs inside AsyncConnection.run_sync
        context = MigrationContext.configure(
            connection, opts={"include_name": include_name, "compare_type": True}
        )
        return compare_metadata(context, target)

    return compare


async def _diff(database_url: str, target: sa.MetaData) -> list:
    engine = create_async_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_differences(target))
    finally:
        await engine.dispose()


async def test_autogenerate_finds_no_difference(database_url: str) -> None:
    assert await _diff(database_url, metadata) == []


async def test_autogenerate_would_notice_a_change(database_url: str) -> None:
    changed = sa.MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["organizations"].append_column(sa.Column("plan", sa.Text))
    diff = await _diff(database_url, changed)
    assert [(d[0], d[3].name) for d in diff] == [("add_column", "plan")]


async def test_request_logs_is_partitioned_by_created_at(db: asyncpg.Connection) -> None:
    strategy, key = await db.fetchrow(
        """
        SELECT p.partstrat::text, a.attname
        FROM pg_partitioned_table p
        JOIN pg_class c ON c.oid = p.partrelid
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = p.partattrs[0]
        WHERE c.relname = 'request_logs'
        """
    )
    assert (strategy, key) == ("r", "created_at")
    names = {r[0] for r in await db.fetch(partitions.LIST_PARTITIONS_SQL)}
    today = datetime.now(UTC).date()
    assert partitions.DEFAULT_PARTITION in names
    for day in partitions.days_to_cover(today, days_ahead=14, days_behind=7):
        assert partitions.partition_name(day) in names


async def _insert_log(db: asyncpg.Connection, created_at: datetime) -> str:
    event_id = uuid.uuid4()
    await db.execute(
        """
        INSERT INTO request_logs (id, created_at, completed_at, org_id, api_key_id, provider,
            endpoint, streaming, status_code, latency_ms, proxy_instance)
        VALUES ($1, $2, $2, $3, $3, 'openai', '/v1/chat/completions', false, 200, 12.5, 'test')
        """,
        event_id,
        created_at,
        uuid.uuid4(),
    )
    return await db.fetchval(
        "SELECT tableoid::regclass::text FROM request_logs WHERE id = $1", event_id
    )


async def test_a_row_lands_in_its_days_partition(db: asyncpg.Connection) -> None:
    # 23:59:59 UTC on one day and 00:00:00 the next are different partitions.
    today = datetime.now(UTC).date()
    midnight = datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)
    assert await _insert_log(db, midnight - timedelta(seconds=1)) == partitions.partition_name(
        today
    )
    assert await _insert_log(db, midnight) == partitions.partition_name(today + timedelta(days=1))


async def test_a_row_outside_every_day_is_kept_in_the_default_partition(
    db: asyncpg.Connection,
) -> None:
    far_future = datetime.now(UTC) + timedelta(days=400)
    assert await _insert_log(db, far_future) == partitions.DEFAULT_PARTITION


async def test_the_same_event_cannot_be_stored_twice(db: asyncpg.Connection) -> None:
    created_at = datetime.now(UTC)
    event_id = uuid.uuid4()
    insert = """
        INSERT INTO request_logs (id, created_at, completed_at, org_id, api_key_id, provider,
            endpoint, streaming, status_code, latency_ms, proxy_instance)
        VALUES ($1, $2, $2, $1, $1, 'openai', '/v1/embeddings', false, 200, 1, 'test')
        ON CONFLICT DO NOTHING
    """
    assert await db.execute(insert, event_id, created_at) == "INSERT 0 1"
    assert await db.execute(insert, event_id, created_at) == "INSERT 0 0"


async def test_reference_data_is_loaded(db: asyncpg.Connection) -> None:
    pricing = load_pricing()
    downgrades = load_downgrades(pricing=pricing)
    rows = await db.fetch(
        "SELECT provider, model, input_per_mtok, output_per_mtok, cached_input_per_mtok, "
        "effective_from FROM model_pricing"
    )
    stored = {(r["provider"], r["model"]): r for r in rows}
    assert len(stored) == len(pricing.prices)
    for price in pricing.prices:
        row = stored[(price.provider, price.model)]
        assert row["input_per_mtok"] == price.input_per_mtok
        assert row["output_per_mtok"] == price.output_per_mtok
        assert row["cached_input_per_mtok"] == price.cached_input_per_mtok
        assert row["effective_from"] == pricing.effective_from
    paths = await db.fetch("SELECT provider, model, target_model, steps FROM model_downgrades")
    assert {tuple(r) for r in paths} == {
        (d.provider, d.model, d.target_model, d.steps) for d in downgrades.paths
    }


async def test_a_late_partition_takes_over_the_rows_the_default_caught(
    db: asyncpg.Connection,
) -> None:
    day = datetime.now(UTC).date() + timedelta(days=500)
    start, _ = partitions.day_bounds(day)
    ids = [await _insert_log(db, start + timedelta(hours=h)) for h in (0, 12, 23)]
    assert ids == [partitions.DEFAULT_PARTITION] * 3
    before = await db.fetchval("SELECT count(*) FROM request_logs")

    assert await partitions.ensure_partitions(db, [day]) == [partitions.partition_name(day)]
    assert await partitions.ensure_partitions(db, [day]) == []  # idempotent

    where = await db.fetch(
        "SELECT tableoid::regclass::text FROM request_logs "
        "WHERE created_at >= $1 AND created_at < $1 + interval '1 day'",
        start,
    )
    assert [r[0] for r in where] == [partitions.partition_name(day)] * 3
    assert await db.fetchval("SELECT count(*) FROM request_logs") == before


async def test_migrate_keeps_partitions_ready_ahead(scratch_database_url: str) -> None:
    await asyncio.to_thread(migrations.migrate, scratch_database_url)
    later = datetime.now(UTC).date() + timedelta(days=30)
    await asyncio.to_thread(migrations.migrate, scratch_database_url, today=later)
    conn = await asyncpg.connect(asyncpg_dsn(scratch_database_url))
    try:
        names = {r[0] for r in await conn.fetch(partitions.LIST_PARTITIONS_SQL)}
    finally:
        await conn.close()
    for day in partitions.days_to_cover(later, migrations.PARTITION_DAYS_AHEAD):
        assert partitions.partition_name(day) in names


async def test_partition_names_round_trip() -> None:
    day = datetime(2027, 3, 9, tzinfo=UTC).date()
    assert partitions.partition_name(day) == "request_logs_p20270309"
    assert partitions.partition_day("request_logs_p20270309") == day
    assert partitions.is_partition("request_logs_default")
    assert not partitions.is_partition("request_logs")
    assert not partitions.is_partition("request_rollups")


async def test_two_processes_adding_the_same_day_at_once(database_url: str) -> None:
    day = datetime.now(UTC).date() + timedelta(days=600)
    conns = [await asyncpg.connect(asyncpg_dsn(database_url)) for _ in range(2)]
    try:
        results = await asyncio.gather(*(partitions.ensure_partitions(c, [day]) for c in conns))
    finally:
        for conn in conns:
            await conn.close()
    assert sorted(results) == [[], [partitions.partition_name(day)]]
