"""The consumer against real Postgres and RabbitMQ, in this process."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import subprocess
import uuid
from datetime import UTC, datetime

import asyncpg
import orjson
import pytest
from aio_pika.abc import AbstractConnection

from consumers import tokeniser
from consumers.consumer import Consumer
from consumers.main import serve
from consumers.pricing import load_price_book
from consumers.stats import Stats
from lectr.broker import BrokerNames
from lectr.db import asyncpg_dsn
from lectr.settings import Settings
from schema.events import HEALTH_TYPE, HealthSnapshot, decode_events, encode_events
from tests.conftest import DELIVERY_LIMIT, REPLAY_MAX_AGE
from tests.consumers.conftest import (
    COMPLETION,
    FAST,
    PROMPT,
    drain,
    get_message,
    make_event,
    org_events,
    publish,
    publish_events,
    read_stream,
    rollup_rows,
    stored_rows,
    wait_for,
)
from tests.support.forwarder import TcpForwarder


async def _consumer(open_channel, pool: asyncpg.Pool, **kwargs: object) -> Consumer:
    return Consumer(kwargs.pop("settings", FAST), pool, await open_channel(), **kwargs)


async def test_events_are_counted_priced_stored_rolled_up_and_published(
    private_topology, consumer_channel, pool, db, amqp: AbstractConnection,
    private_names: BrokerNames,
) -> None:  # fmt: skip
    org = uuid.uuid4()
    events = org_events(org, 23)
    await publish_events(private_topology, events)
    snapshot = HealthSnapshot("proxy", f"proxy-{org}", datetime.now(UTC), buffer_depth=2)
    await publish(private_topology, snapshot.encode(), type_=HEALTH_TYPE)

    consumer = await _consumer(consumer_channel, pool)
    await drain(consumer)

    rows = await stored_rows(db, org)
    assert len(rows) == 23
    enc = tokeniser.encoding_for("gpt-4o-mini")
    expected_output = len(enc.encode_ordinary(COMPLETION))
    expected_input = tokeniser.count_prompt(enc, [{"role": "user", "content": PROMPT}])
    price = (await load_price_book(db)).price("openai", "gpt-4o-mini", events[0].created_at)
    assert price is not None
    for row in rows:
        assert (row["input_tokens"], row["output_tokens"]) == (expected_input, expected_output)
        assert row["token_source"] == "tokeniser"
        assert row["cost_usd"] == price.cost(expected_input, expected_output, None)
    by_id = {e.id: e for e in events}
    row = rows[0]
    event = by_id[row["id"]]
    for name in (
        "created_at",
        "completed_at",
        "feature",
        "task_type",
        "rule_id",
        "ttfb_ms",
        "requested_model",
        "actual_model",
        "latency_ms",
        "proxy_instance",
    ):
        assert row[name] == getattr(event, name), name  # fmt: skip

    (rollup,) = await rollup_rows(db, org)
    assert rollup["request_count"] == 23 and rollup["unpriced_count"] == 0
    assert rollup["output_tokens"] == 23 * expected_output
    assert rollup["cost_usd"] == sum(r["cost_usd"] for r in rows)

    replayed = [e for body in await read_stream(amqp, private_names.replay)
                for e in decode_events(body).events]  # fmt: skip
    assert sorted(e.id for e in replayed) == sorted(by_id)
    assert all(e.text is None and e.output_tokens == expected_output for e in replayed)

    proxy_health = await db.fetchrow(
        "SELECT * FROM pipeline_health WHERE instance = $1", snapshot.instance
    )
    assert proxy_health["buffer_depth"] == 2
    own = await db.fetchrow(
        "SELECT * FROM pipeline_health WHERE instance = $1 ORDER BY id DESC LIMIT 1",
        consumer.instance,
    )
    assert own["component"] == "consumer" and own["ingest_lag_ms"] > 0
    assert orjson.loads(own["details"])["events_stored"] == 23


async def test_unknown_models_get_a_null_cost_and_are_counted(
    private_topology, consumer_channel, pool, db
) -> None:
    org = uuid.uuid4()
    await publish_events(private_topology, org_events(org, 4, actual_model="mystery-model-7"))
    stats = Stats()
    await drain(await _consumer(consumer_channel, pool, stats=stats))
    assert [r["cost_usd"] for r in await stored_rows(db, org)] == [None] * 4
    assert stats.events_unpriced == 4
    (rollup,) = await rollup_rows(db, org)
    assert rollup["unpriced_count"] == 4 and rollup["cost_usd"] == 0


async def test_uncounted_events_keep_their_mark_and_stay_unpriced(
    private_topology, consumer_channel, pool, db
) -> None:
    # The proxy dropped their text (spooled, or over its cap) and had no provider usage.
    org = uuid.uuid4()
    await publish_events(private_topology, org_events(org, 3, text=None, token_source="uncounted"))
    stats = Stats()
    await drain(await _consumer(consumer_channel, pool, stats=stats))
    rows = await stored_rows(db, org)
    assert [(r["token_source"], r["cost_usd"], r["output_tokens"]) for r in rows] == [
        ("uncounted", None, None)
    ] * 3
    assert stats.events_unpriced == 3 and stats.events_tokenised == 0
    (rollup,) = await rollup_rows(db, org)
    assert rollup["unpriced_count"] == 3 and rollup["cost_usd"] == 0


async def test_a_poison_message_leaves_a_marker_and_an_invalid_event_goes_alone(
    private_topology, consumer_channel, pool, db, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    org = uuid.uuid4()
    before, after = org_events(org, 3), org_events(org, 3)
    bad_event = make_event(org_id=org, status_code=-1)
    await publish(private_topology, encode_events(before))
    await publish(private_topology, b'{"v": 1, "events": [ PLANTED-PROMPT-c0ns')
    await publish(private_topology, encode_events([after[0], bad_event, *after[1:]]))

    await drain(await _consumer(consumer_channel, pool))

    assert {r["id"] for r in await stored_rows(db, org)} == {e.id for e in before + after}
    dead = [await get_message(private_topology.dead) for _ in range(2)]
    for message in dead:
        await message.ack()
        assert b"PLANTED" not in message.body
        assert message.headers["x-lectr-reason"] and message.expiration
    marker, invalid = sorted(dead, key=lambda m: len(m.body))
    assert orjson.loads(marker.body) == {"v": 1, "events": []}
    assert "not JSON" in marker.headers["x-lectr-reason"]
    # It does not decode (that is why it is there): its metadata is kept as it came.
    (record,) = orjson.loads(invalid.body)["events"]
    assert record["id"] == str(bad_event.id) and record["org_id"] == str(org)
    assert record["status_code"] == -1 and "text" not in record
    assert "status_code" in invalid.headers["x-lectr-reason"]
    assert await private_topology.dead.get(fail=False) is None
    assert await private_topology.ingest.get(fail=False) is None
    assert "cannot be decoded" in caplog.text and "not JSON" in caplog.text
    assert "status_code" in caplog.text
    assert "PLANTED" not in caplog.text


async def test_two_consumers_store_every_event_exactly_once(
    private_topology, consumer_channel, pool, db
) -> None:
    org = uuid.uuid4()
    events = org_events(org, 200, text=None, input_tokens=10, output_tokens=5)
    await publish_events(private_topology, events, per_message=4)
    # The same events again, as a proxy that retried a publish would send them.
    await publish_events(private_topology, events[:40], per_message=8)
    # A small prefetch, so neither consumer can take every message before the other starts.
    first = Consumer(FAST, pool, await consumer_channel(prefetch=4))
    second = Consumer(FAST, pool, await consumer_channel(prefetch=4))
    await asyncio.gather(drain(first), drain(second))

    assert first.stats.messages > 0 and second.stats.messages > 0
    assert first.stats.events_stored + second.stats.events_stored == 200
    assert len(await stored_rows(db, org)) == 200
    (rollup,) = await rollup_rows(db, org)
    assert rollup["request_count"] == 200 and rollup["input_tokens"] == 2000


async def test_postgres_outage_holds_everything_then_stores_each_event_once(
    private_topology, consumer_channel, database_url: str, db,
    postgres_forwarder: TcpForwarder, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.WARNING)
    pool = await asyncpg.create_pool(
        asyncpg_dsn(postgres_forwarder.url_for(database_url)), min_size=0, max_size=2
    )
    org = uuid.uuid4()
    events = org_events(org, 90)
    consumer = await _consumer(consumer_channel, pool)
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    try:
        await publish_events(private_topology, events[:30])

        async def stored(n: int) -> bool:
            return len(await stored_rows(db, org)) >= n

        await wait_for(lambda: stored(30))
        postgres_forwarder.cut()
        await publish_events(private_topology, events[30:])
        await wait_for(lambda: _true_when(consumer.stats.database_retries >= 3))
        assert len(await stored_rows(db, org)) == 30
        assert not running.done()  # the consumer stays up
        postgres_forwarder.restore()
        await wait_for(lambda: stored(90))
    finally:
        stop.set()
        await asyncio.wait_for(running, 20)
        await pool.close()
    assert len(await stored_rows(db, org)) == 90
    (rollup,) = await rollup_rows(db, org)
    assert rollup["request_count"] == 90
    assert "retry" in caplog.text


async def test_a_lost_broker_connection_is_reopened_and_nothing_is_lost(
    private_topology, private_names: BrokerNames, database_url: str, amqp_url: str, db,
    amqp_forwarder: TcpForwarder, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.WARNING)
    settings = Settings(
        database_url=database_url,
        amqp_url=amqp_forwarder.url_for(amqp_url),
        broker_prefix=private_names.prefix,
        ingest_delivery_limit=DELIVERY_LIMIT,
        replay_max_age=REPLAY_MAX_AGE,
    )
    org = uuid.uuid4()
    events = org_events(org, 40)
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(settings, FAST, stop=stop))
    try:

        async def stored(n: int) -> bool:
            return len(await stored_rows(db, org)) >= n

        await publish_events(private_topology, events[:20])
        await wait_for(lambda: stored(20))
        amqp_forwarder.cut()
        await publish_events(private_topology, events[20:])
        await asyncio.sleep(0.5)
        assert not serving.done()
        amqp_forwarder.restore()
        await wait_for(lambda: stored(40))
    finally:
        stop.set()
        assert await asyncio.wait_for(serving, 20) == 0
    assert len(await stored_rows(db, org)) == 40
    (rollup,) = await rollup_rows(db, org)
    assert rollup["request_count"] == 40
    assert "broker" in caplog.text


async def _true_when(value: bool) -> bool:
    return value


async def test_planted_text_is_nowhere_in_postgres_or_the_replay_stream(
    private_topology, consumer_channel, pool, db, database_url: str,
    amqp: AbstractConnection, private_names: BrokerNames, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    # Everything the consumer logs (the test's own publisher logs frames at DEBUG).
    caplog.set_level(logging.DEBUG, logger="consumers")
    org = uuid.uuid4()
    events = [
        *org_events(org, 5),
        make_event(org_id=org, input_tokens=7, output_tokens=9, token_source="provider"),
        dataclasses.replace(make_event(org_id=org), actual_model="no-price"),
    ]
    await publish_events(private_topology, events)
    await drain(await _consumer(consumer_channel, pool))
    assert len(await stored_rows(db, org)) == 7

    markers = ("PLANTED-PROMPT-c0ns", "PLANTED-COMPLETION-c0ns")
    dump = (
        await asyncio.to_thread(
            subprocess.run,
            ["pg_dump", "--data-only", "--dbname", asyncpg_dsn(database_url)],
            capture_output=True, text=True, check=True,
        )
    ).stdout  # fmt: skip
    assert "request_logs" in dump
    for table in await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"):
        name = table["tablename"]
        rows_with_text = await db.fetchval(
            f'SELECT count(*) FROM "{name}" t WHERE t::text LIKE $1 OR t::text LIKE $2',
            f"%{markers[0]}%",
            f"%{markers[1]}%",
        )
        assert rows_with_text == 0, name
    stream = b"".join(await read_stream(amqp, private_names.replay))
    for marker in markers:
        assert marker not in dump
        assert marker.encode() not in stream
        assert marker not in caplog.text
    assert "no price for openai model 'no-price'" in caplog.text
