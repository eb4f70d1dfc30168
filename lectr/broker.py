"""RabbitMQ topology, declared the same way by every process.

    proxy ──ingest.*──▶ exchange <p>.events (topic) ──▶ queue <p>.ingest (quorum)
                                          │                 │ delivery limit
                                          │                 ▼
                                          │           queue <p>.dead (quorum)
    consumer ─replay.*─────────────────────┴──────▶ stream <p>.replay (max age)

    api / CLI ──▶ exchange <p>.control (fanout) ──▶ one queue per proxy instance

Routing keys say where a message goes: ``ingest.*`` (raw request events, which may
carry transient text for token counting, and health snapshots) reach only the ingest
queue; ``replay.*`` (sanitised events, published by consumers after commit) reach only
the replay stream. So the text a consumer needs never lands in the retained stream.

``<p>`` is ``LECTR_BROKER_PREFIX`` (default ``lectr``); test runs use their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractQueue

from lectr.settings import redact_url

INGEST_EVENTS_KEY = "ingest.events"
INGEST_HEALTH_KEY = "ingest.health"
REPLAY_EVENTS_KEY = "replay.events"

CONNECT_TIMEOUT_S = 10.0
# Errors that mean the broker could not be reached or dropped the connection.
UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    aio_pika.exceptions.AMQPError,
)


class BrokerUnavailable(RuntimeError):
    """RabbitMQ could not be reached. The message names ``LECTR_AMQP_URL``, no password."""

    def __init__(self, url: str, reason: BaseException) -> None:
        super().__init__(
            f"cannot reach the broker at LECTR_AMQP_URL ({redact_url(url)}): "
            f"{reason or type(reason).__name__}"
        )


class TopologyError(RuntimeError):
    """The broker holds a queue or exchange of the same name with other settings."""


@dataclass(frozen=True)
class BrokerNames:
    """Exchange and queue names under one prefix."""

    prefix: str = "lectr"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def control(self) -> str:
        return f"{self.prefix}.control"

    @property
    def ingest(self) -> str:
        return f"{self.prefix}.ingest"

    @property
    def dead(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def replay(self) -> str:
        return f"{self.prefix}.replay"


@dataclass(frozen=True)
class Topology:
    events: AbstractExchange
    control: AbstractExchange
    ingest: AbstractQueue
    dead: AbstractQueue
    replay: AbstractQueue


async def connect(url: str, *, timeout_s: float = CONNECT_TIMEOUT_S) -> AbstractConnection:
    """Open one connection, turning failures to reach it into :class:`BrokerUnavailable`."""
    try:
        return await aio_pika.connect(url, timeout=timeout_s)
    except UNREACHABLE_ERRORS as exc:
        raise BrokerUnavailable(url, exc) from exc


async def declare_topology(
    channel: AbstractChannel,
    names: BrokerNames,
    *,
    delivery_limit: int,
    replay_max_age: str,
) -> Topology:
    """Declare every exchange, queue and binding; safe to call again and from many processes.

    Raises :class:`TopologyError` when an existing queue has different arguments (for
    example another delivery limit); the channel is closed by the broker in that case.
    """
    try:
        events = await channel.declare_exchange(
            names.events, aio_pika.ExchangeType.TOPIC, durable=True
        )
        control = await channel.declare_exchange(
            names.control, aio_pika.ExchangeType.FANOUT, durable=True
        )
        dead = await channel.declare_queue(
            names.dead, durable=True, arguments={"x-queue-type": "quorum"}
        )
        ingest = await channel.declare_queue(
            names.ingest,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": delivery_limit,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": names.dead,
                # Dead letters are moved with confirms, so none are lost on the way;
                # RabbitMQ requires reject-publish overflow for that strategy.
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
        replay = await channel.declare_queue(
            names.replay,
            durable=True,
            arguments={"x-queue-type": "stream", "x-max-age": replay_max_age},
        )
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        raise TopologyError(
            f"the broker already has {names.prefix}.* queues or exchanges declared with other "
            "settings "
            f"({exc}); keep the old LECTR_INGEST_DELIVERY_LIMIT / LECTR_REPLAY_MAX_AGE or "
            "delete the queue once it is drained"
        ) from exc
    await ingest.bind(events, routing_key="ingest.#")
    await replay.bind(events, routing_key="replay.#")
    return Topology(events=events, control=control, ingest=ingest, dead=dead, replay=replay)


async def delete_topology(channel: AbstractChannel, names: BrokerNames) -> None:
    """Remove every queue and exchange under ``names`` (tests and tear-down only)."""
    for queue in (names.ingest, names.dead, names.replay):
        await channel.queue_delete(queue)
    for exchange in (names.events, names.control):
        await channel.exchange_delete(exchange)


async def publish_control(channel: AbstractChannel, names: BrokerNames, body: bytes) -> None:
    """Publish one cache-invalidation message to every proxy instance (with a confirm)."""
    exchange = await channel.declare_exchange(
        names.control, aio_pika.ExchangeType.FANOUT, durable=True
    )
    await exchange.publish(aio_pika.Message(body, content_type="application/json"), routing_key="")
