"""Consumer fixtures: a private broker topology per test, a pool, events and a clock."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta

import aio_pika
import asyncpg
import pytest
from aio_pika.abc import AbstractConnection, AbstractQueue

from consumers.consumer import Consumer
from consumers.settings import ConsumerSettings
from lectr.broker import (
    INGEST_EVENTS_KEY,
    BrokerNames,
    Topology,
    declare_topology,
    delete_topology,
)
from lectr.db import asyncpg_dsn
from schema.events import CONTENT_TYPE, EVENTS_TYPE, RequestEvent, encode_events
from tests.conftest import DELIVERY_LIMIT, REPLAY_MAX_AGE
from tests.support.events import next_message, sample_event

PROMPT = "PLANTED-PROMPT-c0ns: the quarterly numbers for the acquisition"
COMPLETION = "PLANTED-COMPLETION-c0ns: revenue grew by eleven percent in the north"

# Small batches and short intervals so tests finish in seconds.
FAST = ConsumerSettings(
    batch_size=10,
    flush_interval_s=0.2,
    prefetch=50,
    tokenise_threads=2,
    retry_backoff_max_s=0.2,
    price_refresh_s=300,
    health_interval_s=3600,
    shutdown_timeout_s=10,
    delivery_limit=DELIVERY_LIMIT,
)


class ManualClock:
    """A clock that moves only when told to (``sleep`` moves it too, at once)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
        self._monotonic = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self._monotonic

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._monotonic += seconds
        self._now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make_event(**changes: object) -> RequestEvent:
    """A streamed gpt-4o-mini request whose provider reported no usage (text attached)."""
    created = changes.pop("created_at", None) or (
        datetime.now(UTC).replace(microsecond=123456) - timedelta(seconds=5)
    )
    return sample_event(created_at=created, prompt=PROMPT, completion=COMPLETION, **changes)


def org_events(org_id: uuid.UUID, count: int, **changes: object) -> list[RequestEvent]:
    return [make_event(org_id=org_id, **changes) for _ in range(count)]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=0, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture
def private_names(broker_names: BrokerNames) -> BrokerNames:
    return BrokerNames(prefix=f"{broker_names.prefix}_c{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def private_topology(
    amqp: AbstractConnection, private_names: BrokerNames
) -> AsyncIterator[Topology]:
    """A topology of this test's own (same settings as the session's), deleted afterwards."""
    channel = await amqp.channel()
    yield await declare_topology(channel, private_names, replay_max_age=REPLAY_MAX_AGE)
    cleanup = await amqp.channel()
    await delete_topology(cleanup, private_names)
    await cleanup.close()
    if not channel.is_closed:
        await channel.close()


async def publish(topology: Topology, body: bytes, *, type_: str | None = EVENTS_TYPE) -> None:
    await topology.events.publish(
        aio_pika.Message(
            body,
            content_type=CONTENT_TYPE,
            type=type_,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        ),
        routing_key=INGEST_EVENTS_KEY,
    )


async def publish_events(topology: Topology, events: Iterable[RequestEvent], per_message: int = 5):
    events = list(events)
    for start in range(0, len(events), per_message):
        await publish(topology, encode_events(events[start : start + per_message]))


ConsumerFactory = Callable[..., Awaitable[Consumer]]


@pytest.fixture
async def consumer_channel(amqp: AbstractConnection, private_names: BrokerNames):
    """A consuming channel (prefetch as FAST) with the private topology declared on it."""

    async def open_channel(prefetch: int = FAST.prefetch) -> Topology:
        channel = await amqp.channel()
        await channel.set_qos(prefetch_count=prefetch)
        return await declare_topology(channel, private_names, replay_max_age=REPLAY_MAX_AGE)

    return open_channel


async def drain(consumer: Consumer, timeout_s: float = 30.0) -> None:
    """Run ``consumer`` until its queue is empty and everything is acked."""
    await asyncio.wait_for(consumer.run(asyncio.Event(), drain=True), timeout_s)


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def get_message(
    queue: AbstractQueue, timeout_s: float = 10.0
) -> aio_pika.abc.AbstractIncomingMessage:
    return await next_message(queue, timeout_s)


async def read_stream(
    connection: AbstractConnection, name: str, idle_s: float = 1.0
) -> list[bytes]:
    """Every body in the stream ``name`` from its start, until it is quiet for ``idle_s``."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=500)
    queue = await channel.get_queue(name, ensure=False)
    bodies: list[bytes] = []
    inbox: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
    tag = await queue.consume(inbox.put, arguments={"x-stream-offset": "first"})
    while True:
        try:
            message = await asyncio.wait_for(inbox.get(), idle_s)
        except TimeoutError:
            break
        await message.ack()
        bodies.append(message.body)
    await queue.cancel(tag)
    await channel.close()
    return bodies


async def stored_rows(db: asyncpg.Connection, org_id: uuid.UUID) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM request_logs WHERE org_id = $1 ORDER BY id", org_id)


async def rollup_rows(db: asyncpg.Connection, org_id: uuid.UUID) -> list[dict]:
    rows = await db.fetch(
        "SELECT * FROM request_rollups WHERE org_id = $1 "
        "ORDER BY bucket_start, feature, provider, model, status_class",
        org_id,
    )
    return [{k: v for k, v in dict(r).items() if k != "updated_at"} for r in rows]
