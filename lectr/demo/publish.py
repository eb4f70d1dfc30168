"""Publishing history onto the ingest route, exactly as a proxy publishes its events."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel

from lectr import broker
from lectr.errors import CommandError
from lectr.settings import Settings
from schema.events import CONTENT_TYPE, EVENTS_TYPE, RequestEvent, encode_events

# Events per message: the proxy's default LECTR_PROXY_PUBLISH_BATCH_SIZE.
BATCH_SIZE = 500


@dataclass(frozen=True)
class Ingest:
    """The broker's ingest queue as the demo found it."""

    queue: str
    consumers: int


class Publisher:
    """One broker connection: declares the topology, tells whether anything consumes
    the ingest queue, and publishes event batches with publisher confirms."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.names = broker.BrokerNames(settings.broker_prefix)
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def __aenter__(self) -> Publisher:
        # aiormq logs a refused connection itself; the error below says it in one line.
        transport_log = logging.getLogger("aiormq.connection")
        level = transport_log.level
        transport_log.setLevel(logging.CRITICAL)
        try:
            self._connection = await broker.connect(self.settings.amqp_url)
        except broker.BrokerUnavailable as exc:
            raise CommandError(str(exc)) from exc
        finally:
            transport_log.setLevel(level)
        try:
            self._channel = await self._connection.channel(publisher_confirms=True)
            topology = await broker.declare_topology(
                self._channel, self.names, replay_max_age=self.settings.replay_max_age
            )
        except broker.TopologyError as exc:
            await self._connection.close()
            raise CommandError(str(exc)) from exc
        self._exchange = topology.events
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def ingest(self) -> Ingest:
        """The ingest queue and how many consumers it has (a passive declare)."""
        assert self._connection is not None
        async with self._connection.channel() as channel:
            queue = await channel.declare_queue(self.names.ingest, passive=True)
            result = queue.declaration_result
        return Ingest(self.names.ingest, result.consumer_count or 0)

    async def publish(self, events: Sequence[RequestEvent]) -> int:
        """Publish ``events`` in batches of :data:`BATCH_SIZE`, each confirmed by the
        broker; returns the number of messages."""
        assert self._exchange is not None
        messages = 0
        for start in range(0, len(events), BATCH_SIZE):
            body = encode_events(events[start : start + BATCH_SIZE])
            message = aio_pika.Message(
                body,
                content_type=CONTENT_TYPE,
                type=EVENTS_TYPE,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            try:
                await self._exchange.publish(message, routing_key=broker.INGEST_EVENTS_KEY)
            except broker.UNREACHABLE_ERRORS as exc:
                raise CommandError(
                    f"lost the broker while publishing the demo history: {exc}"
                ) from exc
            messages += 1
        return messages
