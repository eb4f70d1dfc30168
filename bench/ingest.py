"""Ingest benchmark: one consumer against a raw asyncpg COPY of the same rows.

Run it from the repository root, with Postgres and RabbitMQ running locally (or pointed
to by ``LECTR_TEST_DATABASE_URL`` / ``LECTR_TEST_AMQP_URL``)::

    .venv/bin/python bench/ingest.py [--events 20000] [--per-message 50] \\
        [--batch-size 100] [--writers 2]

It creates its own database (``lectr_bench_<id>``, migrated) and broker topology
(``lectr_bench_<id>.*``), and drops both at the end. For each workload it pre-publishes
the events into the ingest queue, ``per-message`` events per message as a proxy
batches them, then runs one consumer in this process (the same
:class:`consumers.consumer.Consumer` that ``lectr consumer`` runs, on uvloop, in drain
mode) and times it from start until every message is acked. Workloads:

* ``non-streamed``: the provider reported usage; nothing to count.
* ``streamed``: no usage; prompt and completion are counted with tiktoken.

Then it writes the non-streamed rows again with ``copy_records_to_table`` into the
emptied table, the fastest way asyncpg has to load them, and prints each rate and its
ratio to COPY. The consumer also writes rollups, publishes to the replay stream and
acks; COPY does none of that.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import aio_pika
import asyncpg
import uvloop

from consumers.consumer import Consumer
from consumers.settings import ConsumerSettings
from consumers.writer import COLUMNS
from lectr import migrations
from lectr.broker import (
    INGEST_EVENTS_KEY,
    BrokerNames,
    Topology,
    declare_topology,
    delete_topology,
)
from lectr.db import asyncpg_dsn, drop_database, with_database
from schema.events import CONTENT_TYPE, EVENTS_TYPE, RequestEvent, TokenText, encode_events

PG = os.environ.get("LECTR_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP = os.environ.get("LECTR_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PROMPT = [
    {"role": "system", "content": "You are a concise assistant for a support team. " * 4},
    {"role": "user", "content": "Summarise this ticket and propose a next step. " * 12},
]
COMPLETION = "The customer reports intermittent failures when exporting reports. " * 20


def make_events(count: int, *, streamed: bool) -> list[RequestEvent]:
    org, key = uuid.uuid4(), uuid.uuid4()
    start = datetime.now(UTC) - timedelta(minutes=10)
    models = (("openai", "gpt-4o-mini"), ("openai", "gpt-4.1"),
              ("anthropic", "claude-sonnet-4-5"), ("gemini", "gemini-2.5-flash"))  # fmt: skip
    events = []
    for i in range(count):
        created = start + timedelta(milliseconds=i)
        events.append(
            RequestEvent(
                id=uuid.uuid4(), created_at=created,
                completed_at=created + timedelta(milliseconds=700),
                org_id=org, api_key_id=key, provider=models[i % 4][0],
                endpoint="/v1/chat/completions", streaming=streamed, status_code=200,
                latency_ms=300.0 + i % 900, ttfb_ms=80.0, proxy_instance="bench-proxy",
                requested_model=models[i % 4][1], actual_model=models[i % 4][1],
                feature=f"feature-{i % 5}", task_type="summarisation",
                input_tokens=None if streamed else 420 + i % 50,
                output_tokens=None if streamed else 180 + i % 70,
                token_source=None if streamed else "provider",
                text=TokenText(PROMPT, COMPLETION) if streamed else None,
            )
        )  # fmt: skip
    return events


async def publish(topology: Topology, events: list[RequestEvent], per_message: int) -> None:
    for start in range(0, len(events), per_message):
        body = encode_events(events[start : start + per_message])
        await topology.events.publish(
            aio_pika.Message(
                body, content_type=CONTENT_TYPE, type=EVENTS_TYPE,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=INGEST_EVENTS_KEY,
        )  # fmt: skip


async def consume(
    amqp: aio_pika.abc.AbstractConnection,
    pool: asyncpg.Pool,
    names: BrokerNames,
    settings: ConsumerSettings,
) -> float:
    """Seconds one consumer takes to drain the queue."""
    channel = await amqp.channel()
    await channel.set_qos(prefetch_count=settings.prefetch)
    topology = await declare_topology(channel, names, replay_max_age="1h")
    consumer = Consumer(settings, pool, topology)
    started = time.perf_counter()
    await consumer.run(asyncio.Event(), drain=True)
    elapsed = time.perf_counter() - started
    await channel.close()
    return elapsed


async def raw_copy(pool: asyncpg.Pool, events: list[RequestEvent]) -> float:
    records = [tuple(getattr(e, c) for c in COLUMNS) for e in events]
    async with pool.acquire() as conn:
        started = time.perf_counter()
        await conn.copy_records_to_table("request_logs", records=records, columns=COLUMNS)
        return time.perf_counter() - started


async def run_workload(
    amqp,
    pool,
    names,
    topology,
    events,
    args,
    settings,
) -> float:
    await publish(topology, events, args.per_message)
    seconds = await consume(amqp, pool, names, settings)
    stored = await pool.fetchval(
        "SELECT count(*) FROM request_logs WHERE org_id = $1", events[0].org_id
    )
    assert stored == len(events), f"stored {stored} of {len(events)}"
    return len(events) / seconds


async def main(args: argparse.Namespace) -> None:
    run_id = uuid.uuid4().hex[:8]
    db_url = with_database(PG, f"lectr_bench_{run_id}")
    names = BrokerNames(prefix=f"lectr_bench_{run_id}")
    await asyncio.to_thread(migrations.migrate, db_url)
    amqp = await aio_pika.connect(AMQP)
    pool = await asyncpg.create_pool(asyncpg_dsn(db_url), min_size=1, max_size=4)
    assert pool is not None
    settings = ConsumerSettings(
        batch_size=args.batch_size, writers=args.writers, health_interval_s=3600
    )
    try:
        channel = await amqp.channel()
        topology = await declare_topology(channel, names, replay_max_age="1h")
        plain = make_events(args.events, streamed=False)
        streamed = make_events(args.events // 4, streamed=True)
        rates = {
            "non-streamed": await run_workload(amqp, pool, names, topology, plain, args, settings),
            "streamed": await run_workload(amqp, pool, names, topology, streamed, args, settings),
        }
        await pool.execute("TRUNCATE request_logs, request_rollups")
        copy_rate = len(plain) / await raw_copy(pool, plain)
        print(f"events: {len(plain)} non-streamed, {len(streamed)} streamed; "
              f"{args.per_message} per message; batch size {args.batch_size}, "
              f"{args.writers} writers")  # fmt: skip
        print(f"raw COPY                {copy_rate:10,.0f} events/s")
        for name, rate in rates.items():
            print(f"consumer {name:<14} {rate:10,.0f} events/s   {rate / copy_rate:6.1%} of COPY")
        await delete_topology(channel, names)
    finally:
        await pool.close()
        await amqp.close()
        await drop_database(db_url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--per-message", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=ConsumerSettings.batch_size)
    parser.add_argument("--writers", type=int, default=ConsumerSettings.writers)
    uvloop.run(main(parser.parse_args()))
