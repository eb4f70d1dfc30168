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
    Topology,
    TopologyError,
    declare_topology,
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
        topology = await declare_topology(
            channel, broker_names, delivery_limit=DELIVERY_LIMIT, replay_max_age=REPLAY_MAX_AGE
        )
        assert topology.ingest.name == broker_names.ingest
        await channel.close()


async def test_other_settings_for_an_existing_queue_are_a_clear_error(
    amqp: AbstractConnection, broker_names: BrokerNames, topology: Topology
) -> None:
    channel = await amqp.channel()
    with pytest.raises(TopologyError, match="LECTR_INGEST_DELIVERY_LIMIT"):
        await declare_topology(
            channel,
            broker_names,
            delivery_limit=DELIVERY_LIMIT + 1,
            replay_max_age=REPLAY_MAX_AGE,
        )


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


async def test_a_message_rejected_past_the_delivery_limit_is_dead_lettered(
    topology: Topology,
) -> None:
    await _publish(topology, b"poison", INGEST_EVENTS_KEY)
    for _ in range(DELIVERY_LIMIT):
        message = await _get(topology.ingest)
        assert message.body == b"poison"
        await message.reject(requeue=True)
    # One more rejection than the limit allows: the broker moves it to the dead queue.
    last = await _get(topology.ingest)
    await last.reject(requeue=True)

    dead = await _get(topology.dead)
    assert dead.body == b"poison"
    await dead.ack()
    assert await topology.ingest.get(fail=False) is None
