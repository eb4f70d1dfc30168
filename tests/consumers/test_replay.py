"""``lectr replay``: rebuilding from the replay stream, filters, re-pricing, bad input."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from consumers.clock import SystemClock
from consumers.consumer import Consumer
from consumers.pricing import Price
from consumers.replay import ReplayOptions, ReplaySummary, replay
from consumers.replay_command import parse_time
from lectr import migrations
from lectr.broker import BrokerNames, Topology
from lectr.db import asyncpg_dsn
from tests.consumers.conftest import FAST, drain, make_event, publish_events
from tests.support.cli import run_lectr

NOW = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)


@pytest.fixture
async def scratch_db(scratch_database_url: str) -> AsyncIterator[str]:
    await asyncio.to_thread(migrations.migrate, scratch_database_url)
    yield scratch_database_url


@pytest.fixture
async def scratch(scratch_db: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(asyncpg_dsn(scratch_db))
    yield conn
    await conn.close()


@pytest.fixture
async def scratch_pool(scratch_db: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(asyncpg_dsn(scratch_db), min_size=0, max_size=2)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture
def replay_env(
    lectr_env: dict[str, str], scratch_db: str, private_names: BrokerNames
) -> dict[str, str]:
    return {**lectr_env, "LECTR_DATABASE_URL": scratch_db,
            "LECTR_BROKER_PREFIX": private_names.prefix}  # fmt: skip


ORG_A, ORG_B = uuid.uuid4(), uuid.uuid4()


def _events() -> list:
    events = []
    for hours_ago in (3, 2, 1):
        created = NOW - timedelta(hours=hours_ago)
        for org in (ORG_A, ORG_B):
            events += [make_event(org_id=org, created_at=created,
                                  completed_at=created + timedelta(seconds=1))
                       for _ in range(5)]  # fmt: skip
    events.append(make_event(org_id=ORG_A, created_at=NOW - timedelta(hours=2),
                             actual_model="unpriced-model-x"))  # fmt: skip
    return events


async def _snapshot(conn: asyncpg.Connection) -> tuple[list[dict], list[dict]]:
    rows = [dict(r) for r in await conn.fetch("SELECT * FROM request_logs ORDER BY id")]
    rollups = [
        {k: v for k, v in dict(r).items() if k != "updated_at"}
        for r in await conn.fetch(
            "SELECT * FROM request_rollups "
            "ORDER BY bucket_start, org_id, feature, provider, model, status_class"
        )
    ]
    return rows, rollups


@pytest.fixture
async def stored(
    private_topology: Topology, consumer_channel, scratch_pool: asyncpg.Pool, scratch
) -> tuple[list[dict], list[dict]]:
    """31 events stored by a consumer (and so published to the replay stream)."""
    await publish_events(private_topology, _events())
    await drain(Consumer(FAST, scratch_pool, await consumer_channel()))
    snapshot = await _snapshot(scratch)
    assert len(snapshot[0]) == 31 and len(snapshot[1]) == 7
    return snapshot


async def _replay(pool: asyncpg.Pool, amqp, names: BrokerNames, **options: object) -> ReplaySummary:
    channel = await amqp.channel()
    try:
        return await replay(
            pool, channel, names,
            ReplayOptions(**{"since": NOW - timedelta(days=1), "idle_timeout_s": 0.5, **options}),
            clock=SystemClock(), progress=lambda summary: None,
        )  # fmt: skip
    finally:
        await channel.close()


async def test_replay_after_truncating_restores_identical_rows_and_rollups(
    stored, scratch, scratch_pool, replay_env, amqp, private_names: BrokerNames
) -> None:
    await scratch.execute("TRUNCATE request_logs, request_rollups")
    result = await asyncio.to_thread(run_lectr, "replay", "--since", "1d", env=replay_env)
    assert result.returncode == 0, result.stderr
    assert "replay: reading the replay stream from" in result.stdout
    assert "replay done:" in result.stdout and "31 inserted" in result.stdout
    assert await _snapshot(scratch) == stored

    again = await _replay(scratch_pool, amqp, private_names)
    assert (again.inserted, again.already_stored) == (0, 31)
    assert await _snapshot(scratch) == stored


async def test_replay_selects_by_time_and_org(
    stored, scratch, scratch_pool, amqp, private_names: BrokerNames
) -> None:
    await scratch.execute("TRUNCATE request_logs, request_rollups")
    summary = await _replay(
        scratch_pool, amqp, private_names, org_id=ORG_A,
        since=NOW - timedelta(hours=2, minutes=30), until=NOW - timedelta(hours=1, minutes=30),
    )  # fmt: skip
    assert (summary.events_read, summary.events_selected, summary.inserted) == (31, 6, 6)
    rows = await scratch.fetch("SELECT org_id, created_at FROM request_logs")
    assert {(r["org_id"], r["created_at"]) for r in rows} == {(ORG_A, NOW - timedelta(hours=2))}


async def test_reprice_after_a_price_change_updates_cost_and_rollups(
    stored, scratch, replay_env
) -> None:
    await scratch.execute(
        "INSERT INTO model_pricing (provider, model, effective_from, input_per_mtok, "
        "output_per_mtok, cached_input_per_mtok, source) "
        "VALUES ('openai', 'gpt-4o-mini', $1, 100, 200, 50, 'correction')",
        NOW - timedelta(days=1),
    )
    result = await asyncio.to_thread(
        run_lectr, "replay", "--since", "1d", "--reprice", env=replay_env
    )
    assert result.returncode == 0, result.stderr
    assert "0 inserted, 31 already stored, 30 re-priced" in result.stdout
    new_price = Price(NOW, Decimal(100), Decimal(200), Decimal(50))
    after, rollups = await _snapshot(scratch)
    for row in after:
        if row["actual_model"] == "gpt-4o-mini":
            expected = new_price.cost(row["input_tokens"], row["output_tokens"], None)
            assert row["cost_usd"] == expected
        else:
            assert row["cost_usd"] is None
    for rollup in rollups:
        matching = [r for r in after if _rollup_key(r) == _key_of(rollup)]
        assert rollup["cost_usd"] == sum(r["cost_usd"] or 0 for r in matching)
        assert rollup["unpriced_count"] == sum(r["cost_usd"] is None for r in matching)
        assert rollup["request_count"] == len(matching)


def _rollup_key(row: dict) -> tuple:
    hour = row["created_at"].replace(minute=0, second=0, microsecond=0)
    return (hour, row["org_id"], row["actual_model"] or "")


def _key_of(rollup: dict) -> tuple:
    return (rollup["bucket_start"], rollup["org_id"], rollup["model"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "the following arguments are required: --since"),
        (("--since", "last tuesday"), "expected an ISO 8601 time"),
        (("--since", "2d", "--until", "3d"), "--until must be later than --since"),
        (("--since", "1h", "--org", "acme"), "--org must be an org id"),
        (("--since", "1h", "--bogus"), "unrecognized arguments"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: tuple[str, ...], message: str, lectr_env: dict[str, str]
) -> None:
    result = run_lectr("replay", *args, env=lectr_env)
    assert result.returncode == 2
    assert result.stderr.startswith("lectr: replay: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("90m", NOW - timedelta(minutes=90)),
        ("2d", NOW - timedelta(days=2)),
        ("2026-11-27", datetime(2026, 11, 27, tzinfo=UTC)),
        ("2026-11-27T09:30:00+01:00", datetime(2026, 11, 27, 8, 30, tzinfo=UTC)),
        ("2026-11-27T09:30:00Z", datetime(2026, 11, 27, 9, 30, tzinfo=UTC)),
    ],
)
def test_times(value: str, expected: datetime) -> None:
    assert parse_time(value, NOW) == expected
