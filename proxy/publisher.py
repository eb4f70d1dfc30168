"""The publisher task: the only code that talks to RabbitMQ on the proxy's behalf.

It takes events from the :class:`~proxy.buffer.EventBuffer` (up to ``batch_size``,
waiting at most ``interval_s`` to gather them) and hands them to the
:class:`~proxy.outbox.Outbox`, which sends them as persistent messages of bounded size
with publisher confirms. It also listens on the control exchange for cache
invalidations and publishes health snapshots. Events spooled by an earlier run go out
first.

When the broker goes away it reconnects by itself with a capped backoff (and the caches
reload, as control messages may have been missed); meanwhile events stay in the buffer
(and once it is full, new ones are dropped and counted). Events whose confirm never came
are sent again: consumers insert idempotently by event id, so that never double-counts.
A refused message or a local error never causes a reconnect (see :mod:`proxy.outbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from lectr import broker
from proxy.buffer import EventBuffer
from proxy.outbox import BROKER_ERRORS, Outbox
from schema.control import ControlMessage, InvalidControlMessage
from schema.events import CONTENT_TYPE, EVENTS_TYPE, HEALTH_TYPE, HealthSnapshot

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_S = 10.0
MAX_BACKOFF_S = 5.0
# Drops and refusals this recent make /health say "degraded".
RECENT_S = 60.0


class Publisher:
    def __init__(
        self,
        buffer: EventBuffer,
        *,
        amqp_url: str,
        names: broker.BrokerNames,
        replay_max_age: str,
        instance: str,
        batch_size: int,
        batch_bytes: int,
        interval_s: float,
        health_interval_s: float,
        on_control: Callable[[ControlMessage], None],
        on_reconnect: Callable[[], None],
        health_details: Callable[[], dict[str, object]],
        on_backlog_sent: Callable[[], None] = lambda: None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.buffer = buffer
        self.outbox = Outbox(buffer, batch_size=batch_size, batch_bytes=batch_bytes)
        self.publish_failures = 0
        self.connected = asyncio.Event()
        self._url = amqp_url
        self._names = names
        self._topology_args = {"replay_max_age": replay_max_age}
        self._instance = instance
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._health_interval_s = health_interval_s
        self._on_control = on_control
        self._on_reconnect = on_reconnect
        self._health_details = health_details
        self._on_backlog_sent = on_backlog_sent
        self._sleep = sleep
        self._lost = False
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._sent = asyncio.Event()  # set whenever events leave (confirmed or dropped)
        # Wall-clock time since when events cannot be published (None: all is well).
        self._failing_since: float | None = time.time()

    @property
    def published(self) -> int:
        return self.outbox.published

    @property
    def events_unencodable(self) -> int:
        return self.outbox.unencodable

    @property
    def events_refused(self) -> int:
        return self.outbox.refused

    @property
    def depth(self) -> int:
        """Events held in the buffer, sent or not, not yet confirmed (<= capacity)."""
        return len(self.buffer)

    @property
    def backlog(self) -> int:
        """Events from the spool not yet confirmed."""
        return self.outbox.backlog

    def load_spooled(self, bodies: Iterable[bytes]) -> None:
        """Events spooled by an earlier run: published before any new event."""
        self.outbox.add_spooled(bodies)

    async def run(self) -> None:
        """Connect, publish, reconnect after broker failures; until cancelled."""
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
            except Exception as exc:  # connecting failed, or the broker did: back off
                self.publish_failures += 1
                self._failing_since = self._failing_since or time.time()
                log.warning("event publishing interrupted, reconnecting: %s", _reason(exc))
            finally:
                await self._disconnect()
            attempt += 1
            await self._sleep(min(MAX_BACKOFF_S, 0.1 * 2**attempt))

    async def _connect(self) -> None:
        self._lost = False
        self._connection = await broker.connect(self._url)
        self._connection.close_callbacks.add(self._connection_closed)
        control_channel = await self._connection.channel()
        topology = await broker.declare_topology(
            control_channel, self._names, **self._topology_args
        )
        await self._listen_for_control(control_channel, topology.control)
        await self._open_channel()
        self.connected.set()
        if not self.outbox and not self.buffer:
            self._failing_since = None
        log.info("connected to the broker; publishing events")

    async def _open_channel(self) -> None:
        """The channel events and health go out on, apart from the control listener's,
        so a message the broker refuses by closing it never stops the control queue."""
        assert self._connection is not None
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await self._channel.get_exchange(self._names.events, ensure=False)

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
        self._exchange = self._channel = None
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 2.0)

    async def _publish_forever(self) -> None:
        health = asyncio.create_task(self._publish_health_forever())
        try:
            while True:
                try:
                    await self._publish_once()
                except BROKER_ERRORS:
                    raise
                except Exception:  # a local error (a bug): log it, never reconnect for it
                    log.exception("the event publisher failed on a local error; carrying on")
                    await self._sleep(1.0)
        finally:
            health.cancel()
            with contextlib.suppress(BaseException):
                await health

    async def _publish_once(self) -> None:
        if not self.outbox:
            await self.buffer.wait()
            if self.buffer.queued < self._batch_size:
                await self._sleep(self._interval_s)
            if self._lost:
                raise ConnectionError("the broker connection was lost")
            self.outbox.add(self.buffer.take(self._batch_size))
        backlog = self.outbox.backlog
        try:
            await self.outbox.send(self._send_events)
        finally:
            self._sent.set()
        if backlog and not self.outbox.backlog:
            self._on_backlog_sent()

    async def _send_events(self, body: bytes) -> None:
        if self._lost:
            raise ConnectionError("the broker connection was lost")
        if self._channel is None or self._channel.is_closed:
            try:  # a refusal closed it: the connection is fine
                await self._open_channel()
            except Exception as exc:
                raise ConnectionError(f"cannot open a channel: {_reason(exc)}") from exc
        await self._publish(body, EVENTS_TYPE, broker.INGEST_EVENTS_KEY)
        self._failing_since = None

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

    async def _publish_health_forever(self) -> None:
        while True:
            try:
                await self.publish_health()
            except Exception as exc:  # the events' loop notices a lost connection
                log.debug("could not publish a health snapshot: %s", _reason(exc))
            await self._sleep(self._health_interval_s)

    def counters(self) -> dict[str, object]:
        """The pipeline's counters and state, for /health and health snapshots."""
        return {
            "broker_connected": self.connected.is_set(),
            "buffer_depth": self.depth,
            "buffer_bytes": self.buffer.bytes,
            "events_published": self.published,
            "events_dropped": self.buffer.dropped,
            "events_unencodable": self.events_unencodable,
            "events_refused": self.events_refused,
            "publish_failures": self.publish_failures,
            "spool_backlog": self.backlog,
        }

    def problems(self) -> list[str]:
        """Why events are not all being published now (empty when all is well)."""
        reasons = []
        if self._failing_since is not None:
            since = datetime.fromtimestamp(self._failing_since, UTC).isoformat(timespec="seconds")
            state = "publishing failing" if self.connected.is_set() else "broker unreachable"
            reasons.append(f"{state} since {since}")
        for last, what, count in (
            (self.buffer.last_drop_at, "events dropped: buffer full", self.buffer.dropped),
            (self.outbox.last_refused_at, "events refused by the broker", self.events_refused),
            (
                self.outbox.last_unencodable_at,
                "events that cannot be encoded",
                self.events_unencodable,
            ),
        ):
            if _recent(last):
                reasons.append(f"{what} ({count} in all)")
        return reasons

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
            details={**self._health_details(), **self.counters(), "degraded": self.problems()},
        )
        await self._publish(snapshot.encode(), HEALTH_TYPE, broker.INGEST_HEALTH_KEY)

    async def _until_empty(self) -> None:
        while self.depth or self.outbox:
            self._sent.clear()
            await self._sent.wait()

    async def drain(self, timeout_s: float) -> int:
        """Publish what is held (on shutdown), for at most ``timeout_s``: the events
        left unpublished, 0 when everything went out."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._until_empty(), timeout_s)
        return self.depth + self.backlog

    def unsent(self) -> list[bytes]:
        """Every event not published, encoded without its text (for the spool): those
        being sent first, then those waiting. Call once the publisher has stopped."""
        waiting = self.buffer.take(self.buffer.queued)
        self.outbox.add(waiting)
        return list(self.outbox.unsent())


def _recent(at: float) -> bool:
    """``at`` (time.monotonic(), 0 for never) is within :data:`RECENT_S`."""
    return bool(at) and time.monotonic() - at < RECENT_S


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
