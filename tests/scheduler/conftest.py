"""Scheduler fixtures: orgs, synthetic traffic stored through the consumer's own writer
(so raw rows and rollups agree as they do in production), and job contexts with a
fixed clock."""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from consumers.writer import insert_events
from lectr.db import asyncpg_dsn
from lectr.settings import Settings
from scheduler.job import JobContext
from scheduler.settings import SchedulerSettings
from schema.events import RequestEvent

# A fixed "now" well inside the partitions a fresh database has is not needed: rows
# outside every daily partition land in the default one.
NOW = datetime(2026, 11, 20, 15, 7, 30, tzinfo=UTC)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=0, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()


async def new_org(conn: asyncpg.Connection | asyncpg.Pool, **columns: object) -> uuid.UUID:
    """An organisation of this test only (a unique name); ``columns`` set its columns."""
    values = {"name": f"org-{uuid.uuid4().hex[:12]}", **columns}
    names = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    return await conn.fetchval(
        f"INSERT INTO organizations ({names}) VALUES ({params}) RETURNING id", *values.values()
    )


def request(org_id: uuid.UUID, at: datetime, **changes: object) -> RequestEvent:
    """One non-streamed gpt-4o-mini chat request at ``at`` whose provider reported
    usage; ``changes`` replace any field."""
    event = RequestEvent(
        id=uuid.uuid4(),
        created_at=at,
        completed_at=at + timedelta(milliseconds=400),
        org_id=org_id,
        api_key_id=uuid.UUID(int=1),
        provider="openai",
        endpoint="/v1/chat/completions",
        streaming=False,
        status_code=200,
        latency_ms=400.0,
        proxy_instance="proxy-test",
        requested_model="gpt-4o-mini",
        actual_model="gpt-4o-mini",
        response_model="gpt-4o-mini-2024-07-18",
        ttfb_ms=120.0,
        input_tokens=200,
        output_tokens=50,
        cached_tokens=0,
        token_source="provider",
        cost_usd=Decimal("0.00006"),
        feature="chat",
    )
    return dataclasses.replace(event, **changes)


def hourly(
    org_id: uuid.UUID,
    hour: datetime,
    count: int,
    *,
    rng: random.Random | None = None,
    **changes: object,
) -> list[RequestEvent]:
    """``count`` requests spread over the hour starting at ``hour``; with ``rng``, each
    latency is drawn around the given (or default) one, so percentiles are not trivial."""
    events = []
    for i in range(count):
        at = hour + timedelta(seconds=(i * 3600 // max(count, 1)) % 3600, microseconds=i)
        event = request(org_id, at, **changes)
        if rng is not None:
            latency = event.latency_ms * rng.lognormvariate(0, 0.5)
            event = dataclasses.replace(event, latency_ms=latency)
        events.append(event)
    return events


async def store(pool: asyncpg.Pool, events: Iterable[RequestEvent]) -> int:
    """Store ``events`` and their rollups as a consumer does; returns how many were new."""
    events = list(events)
    stored = 0
    async with pool.acquire() as conn:
        for start in range(0, len(events), 5000):
            async with conn.transaction():
                stored += len(await insert_events(conn, events[start : start + 5000]))
    return stored


def job_context(
    pool: asyncpg.Pool, now: datetime = NOW, *, settings: Settings | None = None, **changes: object
) -> JobContext:
    """A context whose clock always says ``now``; ``changes`` set scheduler settings."""
    return JobContext(
        pool=pool,
        settings=settings or Settings(),
        scheduler=dataclasses.replace(SchedulerSettings(), **changes),
        clock=lambda: now,
    )
