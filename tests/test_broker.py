"""The broker topology every process declares."""

from __future__ import annotations

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection, AbstractQueue

from lectr.broker import (
    INGEST_EVENTS_KEY,
    INGEST_HEALTH_KEY,
    REPLAY_EVENTS_KEY,
    BrokerNames,
    LegacyIngestQueue,
    Topology,
    TopologyError,
    declare_topology,
    delete_topology,
)
from tests.conftest import DELIVERY_LIMIT, REPLAY_MAX_AGE
from tests.support.events import next_message


async def _get(queue: AbstractQueue, timeout_s: float = 5.0) -> aio_pika.IncomingMessage:
    """The next message on ``queue``, polling until ``timeout_s``."""
    return await next_message(queue, timeout_s)


async def _publish(topology: Topology, body: bytes, routing_key: str) -> None:
    await topology.events.publish(
        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key=routing_key,
    )


async def _read_stream(
    connection: AbstractConnection, name: str, wanted: bytes, timeout_s: float = 5.0
) -> list[bytes]:
    """Bodies in the stream from its start up to and including ``wanted``."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=100)
    queue = await channel.get_queue(name, ensure=False)
    bodies: list[bytes] = []
    async with queue.iterator(arguments={"x-stream-offset": "first"}, timeout=timeout_s) as it:
        async for message in it:
            await message.ack()
            bodies.append(message.body)
            if message.body == wanted:
                break
    await channel.close()
    return bodies


async def test_declaring_again_is_harmless(
    amqp: AbstractConnection, broker_names: BrokerNames
) -> None:
    for _ in range(2):
        channel = await amqp.channel()
        topology = await declare_topology(channel, broker_names, replay_max_age=REPLAY_MAX_AGE)
        assert topology.ingest.name == broker_names.ingest
        await channel.close()


async def test_other_settings_for_an_existing_queue_are_a_clear_error(
    amqp: AbstractConnection, broker_names: BrokerNames, topology: Topology
) -> None:
    channel = await amqp.channel()
    with pytest.raises(TopologyError, match="LECTR_REPLAY_MAX_AGE") as raised:
        await declare_topology(channel, broker_names, replay_max_age="2D")
    assert not isinstance(raised.value, LegacyIngestQueue)


async def test_an_ingest_queue_declared_the_old_way_is_a_clear_error_with_a_way_out(
    amqp: AbstractConnection, broker_names: BrokerNames
) -> None:
    names = BrokerNames(f"{broker_names.prefix}_old")
    channel = await amqp.channel()
    await channel.declare_queue(
        names.ingest,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": 5,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": names.dead,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )
    try:
        with pytest.raises(LegacyIngestQueue) as raised:
            await declare_topology(await amqp.channel(), names, replay_max_age=REPLAY_MAX_AGE)
        message = str(raised.value)
        assert "lectr consumer --drain" in message
        assert f"rabbitmqctl delete_queue {names.ingest}" in message
        # Draining it is still possible: the queue is only looked up.
        legacy = await declare_topology(
            await amqp.channel(), names, replay_max_age=REPLAY_MAX_AGE, legacy_ingest=True
        )
        assert legacy.ingest.name == names.ingest
    finally:
        cleanup = await amqp.channel()
        await delete_topology(cleanup, names)


async def test_ingest_messages_reach_the_ingest_queue_only(
    amqp: AbstractConnection, topology: Topology, broker_names: BrokerNames
) -> None:
    await _publish(topology, b"raw event batch", INGEST_EVENTS_KEY)
    await _publish(topology, b"health snapshot", INGEST_HEALTH_KEY)
    await _publish(topology, b"sanitised batch", REPLAY_EVENTS_KEY)

    received = [await _get(topology.ingest), await _get(topology.ingest)]
    assert [m.body for m in received] == [b"raw event batch", b"health snapshot"]
    for message in received:
        await message.ack()
    assert await topology.ingest.get(fail=False) is None

    # The stream holds the sanitised batch and never the raw one, which may carry text.
    bodies = await _read_stream(amqp, broker_names.replay, b"sanitised batch")
    assert b"sanitised batch" in bodies
    assert b"raw event batch" not in bodies


async def test_the_replay_stream_can_be_read_again_from_the_start(
    amqp: AbstractConnection, topology: Topology, broker_names: BrokerNames
) -> None:
    await _publish(topology, b"replayable", REPLAY_EVENTS_KEY)
    first = await _read_stream(amqp, broker_names.replay, b"replayable")
    second = await _read_stream(amqp, broker_names.replay, b"replayable")
    assert first == second and first[-1] == b"replayable"


async def test_the_broker_never_dead_letters_a_raw_ingest_message(
    topology: Topology,
) -> None:
    # Raw messages may hold prompt text: only consumers dead-letter, sanitised events.
    await _publish(topology, b"poison", INGEST_EVENTS_KEY)
    for count in range(DELIVERY_LIMIT + 3):
        message = await _get(topology.ingest)
        assert message.body == b"poison"
        # The count consumers enforce LECTR_INGEST_DELIVERY_LIMIT with.
        assert (message.headers or {}).get("x-delivery-count", 0) == count
        await message.reject(requeue=True)
    assert await topology.dead.get(fail=False) is None
    last = await _get(topology.ingest)
    await last.ack()
