"""RabbitMQ topology, declared the same way by every process.

    proxy ──ingest.*──▶ exchange <p>.events (topic) ──▶ queue <p>.ingest (quorum)
                                          │                 │ consumer
                                          │                 ▼ (sanitised events only)
                                          │           queue <p>.dead (quorum)
    consumer ─replay.*─────────────────────┴──────▶ stream <p>.replay (max age)

    api / CLI ──▶ exchange <p>.control (fanout) ──▶ one queue per proxy instance

Routing keys say where a message goes: ``ingest.*`` (raw request events, which may
carry transient text for token counting, and health snapshots) reach only the ingest
queue; ``replay.*`` (sanitised events, published by consumers after commit) reach only
the replay stream. So the text a consumer needs never lands in the retained stream.

Nothing moves to ``<p>.dead`` by itself: the ingest queue has no dead-letter exchange,
because a raw ingest message may carry prompt text and holds events of many orgs. The
consumer dead-letters instead, one sanitised event at a time (see :mod:`consumers.dead`),
and enforces ``LECTR_INGEST_DELIVERY_LIMIT`` itself from the quorum queue's
``x-delivery-count`` header. RabbitMQ 4.x gives quorum queues a default delivery limit of
20 and then drops a message when it has no dead-letter exchange, so that limit must stay
well below 20 (:data:`lectr.settings.MAX_DELIVERY_LIMIT`).

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

# Arguments an ingest queue declared before consumers dead-lettered by themselves has.
LEGACY_INGEST_ARGUMENTS = (
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-delivery-limit",
    "x-overflow",
)

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


class LegacyIngestQueue(TopologyError):
    """The ingest queue was declared the old way, with a broker-side dead-letter path.

    Queue arguments cannot change, so it has to be drained and deleted once; only
    ``lectr consumer --drain`` still consumes it (see :func:`declare_topology`).
    """

    def __init__(self, names: BrokerNames, detail: str) -> None:
        super().__init__(
            f"the queue {names.ingest} was declared by an older Lectr, which let the broker "
            f"dead-letter raw messages ({detail}); migrate it once: stop the proxies, run "
            f"`lectr consumer --drain` until it exits, delete the queue "
            f"(`rabbitmqctl delete_queue {names.ingest}`), then start Lectr again"
        )


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
    replay_max_age: str,
    legacy_ingest: bool = False,
) -> Topology:
    """Declare every exchange, queue and binding; safe to call again and from many processes.

    Raises :class:`TopologyError` when an existing queue has different arguments (another
    replay max age), and :class:`LegacyIngestQueue` when the ingest queue is the old kind;
    the channel is closed by the broker in both cases. With ``legacy_ingest`` the ingest
    queue is only looked up, whatever its arguments (to drain an old one).
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
        if legacy_ingest:
            ingest = await channel.declare_queue(names.ingest, passive=True)
        else:
            # No dead-letter arguments: the consumer dead-letters sanitised events itself.
            ingest = await channel.declare_queue(
                names.ingest, durable=True, arguments={"x-queue-type": "quorum"}
            )
        replay = await channel.declare_queue(
            names.replay,
            durable=True,
            arguments={"x-queue-type": "stream", "x-max-age": replay_max_age},
        )
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        raise _precondition_error(names, str(exc)) from exc
    await ingest.bind(events, routing_key="ingest.#")
    await replay.bind(events, routing_key="replay.#")
    return Topology(events=events, control=control, ingest=ingest, dead=dead, replay=replay)


def _precondition_error(names: BrokerNames, detail: str) -> TopologyError:
    if f"'{names.ingest}'" in detail and any(f"'{a}'" in detail for a in LEGACY_INGEST_ARGUMENTS):
        return LegacyIngestQueue(names, detail)
    return TopologyError(
        f"the broker already has {names.prefix}.* queues or exchanges declared with other "
        f"settings ({detail}); keep the old LECTR_REPLAY_MAX_AGE or delete the queue once "
        "it is drained"
    )


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
