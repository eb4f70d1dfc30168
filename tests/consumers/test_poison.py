"""Poison input through the real broker and consumer (and a real proxy): one bad event
never takes other orgs' events with it, what reaches ``.dead`` is sanitised events only,
and a message that keeps failing is dead-lettered by the consumer, not the broker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from datetime import UTC, datetime

import aio_pika
import aiohttp
import asyncpg
import orjson
import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue

from consumers.consumer import Consumer
from consumers.dead import REASON
from consumers.main import serve
from consumers.settings import ConsumerSettings
from lectr.broker import BrokerNames, LegacyIngestQueue, Topology, declare_topology
from lectr.db import asyncpg_dsn
from lectr.orgs import IssuedKey, create_org
from lectr.settings import Settings
from schema.events import HEALTH_TYPE, HealthSnapshot, decode_events, encode_events
from tests.conftest import DELIVERY_LIMIT, REPLAY_MAX_AGE
from tests.consumers.conftest import (
    FAST,
    PROMPT,
    drain,
    make_event,
    org_events,
    publish,
    read_stream,
    stored_rows,
    wait_for,
)
from tests.proxy.conftest import PEPPER, StartProxy, chat, lectr_headers
from tests.proxy.conftest import start_proxy as start_proxy  # a fixture
from tests.support.events import take_all
from tests.support.forwarder import TcpForwarder

MARKERS = ("PLANTED-PROMPT", "PLANTED-COMPLETION")


def assert_no_text(messages: list[AbstractIncomingMessage]) -> None:
    for message in messages:
        assert b"PLANTED" not in message.body
        assert all(b"PLANTED" not in str(v).encode() for v in (message.headers or {}).values())
        # Every dead letter is a batch in the wire format, without text.
        assert all(e.get("text") is None for e in orjson.loads(message.body)["events"])


async def test_one_nul_among_other_orgs_events_dead_letters_that_event_alone(
    private_topology: Topology, consumer_channel, pool, db, amqp: AbstractConnection,
    private_names: BrokerNames,
) -> None:  # fmt: skip
    org_a, org_b = uuid.uuid4(), uuid.uuid4()
    others = org_events(org_b, 20)  # with prompt and completion text
    bad = make_event(org_id=org_a, requested_model="gpt-4o\x00", actual_model="gpt-4o\x00")
    await publish(private_topology, encode_events([*others[:10], bad, *others[10:]]))
    # A proxy health snapshot with a NUL is dropped and counted, never dead-lettered.
    snapshot = HealthSnapshot("proxy", "p-\x00", datetime.now(UTC))
    await publish(private_topology, snapshot.encode(), type_=HEALTH_TYPE)

    consumer = Consumer(FAST, pool, await consumer_channel())
    await drain(consumer)

    assert {r["id"] for r in await stored_rows(db, org_b)} == {e.id for e in others}
    assert await stored_rows(db, org_a) == []
    dead = await take_all(private_topology.dead)
    assert_no_text(dead)
    (letter,) = dead
    assert letter.headers[REASON] == "requested_model: holds NUL"
    assert letter.headers["x-lectr-origin-delivery-count"] == 1
    assert letter.headers["x-lectr-dead-at"] and letter.expiration
    (event,) = decode_events(letter.body).events
    assert event.id == bad.id and event.org_id == org_a and event.text is None
    # Stored as it would be once retried: the NUL replaced, tokens marked uncounted.
    assert event.requested_model == "gpt-4o\ufffd" and event.token_source == "uncounted"
    assert consumer.stats.events_dead == 1 and consumer.stats.health_invalid == 1
    assert await private_topology.ingest.get(fail=False) is None  # all acked
    stream = b"".join(await read_stream(amqp, private_names.replay))
    assert b"PLANTED" not in stream and str(bad.id).encode() not in stream


async def test_an_event_postgres_refuses_is_isolated_from_its_message(
    private_topology: Topology, consumer_channel, pool, db
) -> None:
    org_a, org_b = uuid.uuid4(), uuid.uuid4()
    # Nothing in the event format forbids it; only the database does (a check constraint).
    refused = make_event(org_id=org_a, status_code=999)
    others = org_events(org_b, 12)
    await publish(private_topology, encode_events([*others[:5], refused, *others[5:]]))
    await db.execute(
        "ALTER TABLE request_logs ADD CONSTRAINT ck_poison CHECK (status_code < 900) NOT VALID"
    )
    try:
        await drain(Consumer(FAST, pool, await consumer_channel()))
    finally:
        await db.execute("ALTER TABLE request_logs DROP CONSTRAINT ck_poison")
    assert {r["id"] for r in await stored_rows(db, org_b)} == {e.id for e in others}
    assert all(r["token_source"] == "tokeniser" for r in await stored_rows(db, org_b))
    dead = await take_all(private_topology.dead)
    assert_no_text(dead)
    (letter,) = dead
    assert "CheckViolationError" in letter.headers[REASON] and "ck_poison" in letter.headers[REASON]
    (event,) = decode_events(letter.body).events
    assert event.id == refused.id and event.output_tokens  # counted before the insert


async def test_a_message_that_reached_the_delivery_limit_is_dead_lettered_unprocessed(
    private_topology: Topology, consumer_channel, pool, db
) -> None:
    org = uuid.uuid4()
    events = org_events(org, 3)
    await publish(private_topology, encode_events(events))
    # Consumers that crashed on it: each delivery ended without an ack.
    for _ in range(DELIVERY_LIMIT):
        message = await wait_get(private_topology.ingest)
        await message.nack(requeue=True)

    consumer = Consumer(FAST, pool, await consumer_channel())
    await drain(consumer)

    assert await stored_rows(db, org) == []  # not processed again
    dead = await take_all(private_topology.dead)
    assert_no_text(dead)
    assert len(dead) == 3 and consumer.stats.messages_over_limit == 1
    assert {e.id for m in dead for e in decode_events(m.body).events} == {e.id for e in events}
    for letter in dead:
        assert "delivery limit" in letter.headers[REASON]
        assert letter.headers["x-lectr-origin-delivery-count"] == DELIVERY_LIMIT + 1
        (event,) = decode_events(letter.body).events
        assert event.token_source == "uncounted" and event.output_tokens is None
    assert await private_topology.ingest.get(fail=False) is None


async def wait_get(queue: AbstractQueue) -> AbstractIncomingMessage:
    deadline = time.monotonic() + 10
    while (message := await queue.get(no_ack=False, fail=False)) is None:
        assert time.monotonic() < deadline, f"nothing on {queue.name}"
        await asyncio.sleep(0.02)
    return message


async def test_dead_letters_expire_after_the_retention(
    private_topology: Topology, consumer_channel, pool
) -> None:
    settings = dataclasses.replace(FAST, dead_retention_s=1)
    await publish(private_topology, encode_events([make_event(requested_model="x\x00")]))
    await drain(Consumer(settings, pool, await consumer_channel()))
    declared = await private_topology.dead.channel.declare_queue(
        private_topology.dead.name, passive=True
    )
    assert declared.declaration_result.message_count == 1
    await asyncio.sleep(1.5)
    assert await private_topology.dead.get(fail=False) is None


async def test_a_restored_database_is_noticed_within_5_s(
    private_topology: Topology, consumer_channel, database_url: str, db,
    postgres_forwarder: TcpForwarder,
) -> None:  # fmt: skip
    # Default backoff (not the tests' short one): what a deployment gets.
    settings = dataclasses.replace(FAST, retry_backoff_max_s=ConsumerSettings().retry_backoff_max_s)
    pool = await asyncpg.create_pool(
        asyncpg_dsn(postgres_forwarder.url_for(database_url)), min_size=0, max_size=3
    )
    org = uuid.uuid4()
    consumer = Consumer(settings, pool, await consumer_channel())
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    try:
        postgres_forwarder.cut()
        await publish(private_topology, encode_events(org_events(org, 5)))
        # Long enough for the retry waits to reach their cap (0.1 s doubling).
        await asyncio.sleep(8)
        assert consumer.stats.database_retries >= 6
        assert await stored_rows(db, org) == []
        postgres_forwarder.restore()
        restored = time.monotonic()

        async def stored() -> bool:
            return len(await stored_rows(db, org)) == 5

        await wait_for(stored, timeout_s=10)
        took = time.monotonic() - restored
    finally:
        stop.set()
        await asyncio.wait_for(running, 20)
        await pool.close()
    assert took < 5, f"stored {took:.1f} s after the database came back"


async def test_an_ingest_queue_of_the_old_kind_is_refused_with_a_way_out_and_can_be_drained(
    amqp: AbstractConnection, private_names: BrokerNames, database_url: str, amqp_url: str,
    db, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.WARNING)
    channel = await amqp.channel()
    await channel.declare_queue(
        private_names.dead, durable=True, arguments={"x-queue-type": "quorum"}
    )
    old = await channel.declare_queue(
        private_names.ingest,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": private_names.dead,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )
    org = uuid.uuid4()
    events = org_events(org, 4)
    await channel.default_exchange.publish(
        aio_pika.Message(encode_events(events), type="lectr.events.v1"), routing_key=old.name
    )
    with pytest.raises(LegacyIngestQueue) as refused:
        await declare_topology(await amqp.channel(), private_names, replay_max_age=REPLAY_MAX_AGE)
    message = str(refused.value)
    assert "lectr consumer --drain" in message and f"delete_queue {private_names.ingest}" in message

    settings = Settings(
        database_url=database_url,
        amqp_url=amqp_url,
        broker_prefix=private_names.prefix,
        ingest_delivery_limit=DELIVERY_LIMIT,
        replay_max_age=REPLAY_MAX_AGE,
    )
    with pytest.raises(LegacyIngestQueue):  # a consumer that is not draining stops
        await asyncio.wait_for(serve(settings, FAST, stop=asyncio.Event()), 20)
    assert await asyncio.wait_for(serve(settings, FAST, drain=True, stop=asyncio.Event()), 30) == 0
    assert {r["id"] for r in await stored_rows(db, org)} == {e.id for e in events}
    assert "old kind" in caplog.text

    cleanup = await amqp.channel()
    for name in (private_names.ingest, private_names.dead, private_names.replay):
        await cleanup.queue_delete(name)
    for name in (private_names.events, private_names.control):
        await cleanup.exchange_delete(name)


# -- through a real proxy ---------------------------------------------------------------


async def _stream(session: aiohttp.ClientSession, url: str, org: IssuedKey, prompt: str) -> int:
    """A streamed chat whose provider reports no usage: its event carries the text."""
    async with session.post(
        f"{url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "stream": True,
              "messages": [{"role": "user", "content": prompt}]},
        headers=lectr_headers(org),
    ) as response:  # fmt: skip
        await response.read()
        return response.status


async def test_bad_input_through_a_proxy_loses_no_other_orgs_events_and_keeps_no_text(
    start_proxy: StartProxy, db: asyncpg.Connection, pool: asyncpg.Pool,
    amqp: AbstractConnection, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG, logger="consumers")
    org_a = await create_org(db, f"org-a-{uuid.uuid4().hex[:8]}", pepper=PEPPER)
    org_b = await create_org(db, f"org-b-{uuid.uuid4().hex[:8]}", pepper=PEPPER)
    # A long publish interval: everything below goes out in one message.
    proxy = await start_proxy(publish_interval_s=1.5)
    channel = await amqp.channel()
    await channel.set_qos(prefetch_count=FAST.prefetch)
    topology = await declare_topology(channel, proxy.names, replay_max_age=REPLAY_MAX_AGE)
    consumer = Consumer(FAST, pool, topology)
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    try:
        async with aiohttp.ClientSession() as session:
            results = await asyncio.gather(
                *[_stream(session, proxy.url, org_b, f"{PROMPT} #{i}") for i in range(20)],
                chat(proxy, org_a, "gpt-4o\u0000"),
                session.get(f"{proxy.url}/v1/models%00x", headers=lectr_headers(org_a)),
            )
            assert results[21].status == 400  # a path holding NUL reaches no provider
            results[21].close()
        assert results[:20] == [200] * 20
        assert results[20].status == 200  # served, its model made storable
        # The bad event straight onto the ingest queue, among org B's events (an older
        # proxy, or anything else, could send it): the consumer isolates it.
        injected_b = org_events(org_b.org_id, 3)
        injected_a = make_event(org_id=org_a.org_id, requested_model="gpt-4o\x00")
        await publish(topology, encode_events([injected_b[0], injected_a, *injected_b[1:]]))

        async def all_stored() -> bool:
            return (
                len(await stored_rows(db, org_b.org_id)) >= 23
                and len(await stored_rows(db, org_a.org_id)) >= 1
                and consumer.stats.events_dead >= 1
            )

        await wait_for(all_stored, timeout_s=20)
        await asyncio.sleep(FAST.flush_interval_s * 3)  # anything more would come now
    finally:
        stop.set()
        await asyncio.wait_for(running, 20)

    rows_b = await stored_rows(db, org_b.org_id)
    assert len(rows_b) == 23 and {e.id for e in injected_b} <= {r["id"] for r in rows_b}
    assert all(r["output_tokens"] for r in rows_b)  # counted from the text, then dropped
    rows_a = await stored_rows(db, org_a.org_id)
    chat_a = [r for r in rows_a if r["endpoint"] == "/v1/chat/completions"]
    assert len(chat_a) == 1 and "\x00" not in chat_a[0]["requested_model"]
    assert injected_a.id not in {r["id"] for r in rows_a}

    dead = await take_all(topology.dead)
    assert_no_text(dead)
    assert [e.id for m in dead for e in decode_events(m.body).events] == [injected_a.id]
    stream = b"".join(await read_stream(amqp, proxy.names.replay))
    assert b"PLANTED" not in stream
    assert "PLANTED" not in caplog.text
    await channel.close()


async def _has_messages(queue: AbstractQueue) -> bool:
    declared = await queue.channel.declare_queue(queue.name, passive=True)
    return bool(declared.declaration_result.message_count)
