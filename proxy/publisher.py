"""The publisher task: the only code that talks to RabbitMQ on the proxy's behalf.

It takes batches from the :class:`~proxy.buffer.EventBuffer` (up to ``batch_size``
events, waiting at most ``interval_s`` to fill one) and publishes each as one persistent
message with a publisher confirm. It also listens on the control exchange for cache
invalidations and publishes health snapshots. When the broker goes away it reconnects by
itself with a capped backoff; meanwhile events stay in the buffer (and once it is full,
new ones are dropped and counted). A batch whose confirm never came is sent again:
consumers insert idempotently by event id, so that never double-counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from lectr import broker
from proxy.buffer import EventBuffer
from schema.control import ControlMessage, InvalidControlMessage
from schema.events import (
    CONTENT_TYPE,
    EVENTS_TYPE,
    HEALTH_TYPE,
    HealthSnapshot,
    RequestEvent,
    encode_events,
)

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_S = 10.0
MAX_BACKOFF_S = 5.0


class Publisher:
    def __init__(
        self,
        buffer: EventBuffer,
        *,
        amqp_url: str,
        names: broker.BrokerNames,
        delivery_limit: int,
        replay_max_age: str,
        instance: str,
        batch_size: int,
        interval_s: float,
        health_interval_s: float,
        on_control: Callable[[ControlMessage], None],
        on_reconnect: Callable[[], None],
        health_details: Callable[[], dict[str, object]],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.buffer = buffer
        self.published = 0
        self.publish_failures = 0
        self.connected = asyncio.Event()
        self._url = amqp_url
        self._names = names
        self._topology_args = {"delivery_limit": delivery_limit, "replay_max_age": replay_max_age}
        self._instance = instance
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._health_interval_s = health_interval_s
        self._on_control = on_control
        self._on_reconnect = on_reconnect
        self._health_details = health_details
        self._sleep = sleep
        # The batch being sent; kept across reconnects until it is confirmed.
        self._in_hand: list[RequestEvent] = []
        self._lost = False
        self._connection: AbstractConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._sent = asyncio.Event()  # set after each confirmed batch

    @property
    def depth(self) -> int:
        """Events not yet confirmed by the broker."""
        return len(self.buffer) + len(self._in_hand)

    async def run(self) -> None:
        """Connect, publish, reconnect after failures; until cancelled."""
        attempt = 0
        first = True
        while True:
            try:
                await self._connect()
                if not first:
                    self._on_reconnect()
                first, attempt = False, 0
                await self._publish_forever()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any broker failure: count, back off, reconnect
                self.publish_failures += 1
                log.warning("event publishing interrupted, reconnecting: %s", _reason(exc))
            finally:
                await self._disconnect()
            attempt += 1
            await self._sleep(min(MAX_BACKOFF_S, 0.1 * 2**attempt))

    async def _connect(self) -> None:
        self._lost = False
        self._connection = await broker.connect(self._url)
        self._connection.close_callbacks.add(self._connection_closed)
        channel = await self._connection.channel(publisher_confirms=True)
        topology = await broker.declare_topology(channel, self._names, **self._topology_args)
        self._exchange = topology.events
        await self._listen_for_control(channel, topology.control)
        self.connected.set()
        log.info("connected to the broker; publishing events")

    def _connection_closed(self, sender: object, exc: BaseException | None = None) -> None:
        """The broker went away: stop saying we are connected and wake the publish loop."""
        self._lost = True
        self.connected.clear()
        self.buffer.wake()

    async def _listen_for_control(
        self, channel: AbstractChannel, control: AbstractExchange
    ) -> None:
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(control)
        await queue.consume(self._control_message, no_ack=True)

    async def _control_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            self._on_control(ControlMessage.decode(message.body))
        except InvalidControlMessage as exc:
            log.warning("ignored a control message: %s", exc)

    async def _disconnect(self) -> None:
        self.connected.clear()
        self._exchange = None
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 2.0)

    async def _publish_forever(self) -> None:
        health = asyncio.create_task(self._publish_health_forever())
        try:
            while True:
                if not self._in_hand:
                    await self.buffer.wait()
                    if self.buffer and len(self.buffer) < self._batch_size:
                        await self._sleep(self._interval_s)
                    if self._lost:
                        raise ConnectionError("the broker connection was lost")
                    self._in_hand = self.buffer.take(self._batch_size)
                if self._in_hand:
                    await self._send_in_hand()
                if health.done():
                    health.result()  # re-raise its broker failure here
        finally:
            health.cancel()
            with contextlib.suppress(BaseException):
                await health

    async def _publish(self, body: bytes, message_type: str, routing_key: str) -> None:
        """One persistent message, waiting for the broker's confirm (bounded)."""
        assert self._exchange is not None
        message = aio_pika.Message(
            body,
            content_type=CONTENT_TYPE,
            type=message_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await asyncio.wait_for(
            self._exchange.publish(message, routing_key=routing_key), CONFIRM_TIMEOUT_S
        )

    async def _send_in_hand(self) -> None:
        await self._publish(encode_events(self._in_hand), EVENTS_TYPE, broker.INGEST_EVENTS_KEY)
        self.published += len(self._in_hand)
        self._in_hand = []
        self._sent.set()

    async def _publish_health_forever(self) -> None:
        while True:
            await self.publish_health()
            await self._sleep(self._health_interval_s)

    async def publish_health(self) -> None:
        if self._exchange is None:
            return
        snapshot = HealthSnapshot(
            component="proxy",
            instance=self._instance,
            recorded_at=datetime.now(UTC),
            buffer_depth=self.depth,
            events_published=self.published,
            events_dropped=self.buffer.dropped,
            publish_failures=self.publish_failures,
            details=self._health_details(),
        )
        await self._publish(snapshot.encode(), HEALTH_TYPE, broker.INGEST_HEALTH_KEY)

    async def _until_empty(self) -> None:
        while self.depth:
            self._sent.clear()
            await self._sent.wait()

    async def drain(self, timeout_s: float) -> int:
        """Publish what is buffered (on shutdown), for at most ``timeout_s``.

        Returns the events left unpublished (logged), 0 when everything went out."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._until_empty(), timeout_s)
        left = self.depth
        if left:
            log.error("shutting down with %d events not published", left)
        return left


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
