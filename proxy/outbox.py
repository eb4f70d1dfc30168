"""Events on their way to the broker: encoded one by one, cut into messages, re-sent.

Each event is encoded on its own (:func:`schema.events.encode_event`) and the encoded
events are joined into a message body, so one event that cannot be encoded is dropped
alone and counted, and a message's size is known before it is built. A message holds at
most ``batch_size`` events and ``batch_bytes`` bytes (an event too large on its own is
sent without its text, ``uncounted``).

A message the broker refuses (a nack, or the channel closed for a failed precondition
such as its size) is split in halves and re-sent; a single event still refused is
dropped and counted, never re-sent as is. A local error while sending (a bug) is treated
the same way, never as a broker outage. A broker failure (connection lost, no confirm in
time) leaves every unconfirmed event here, to be sent again after reconnecting.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass

import aio_pika
import aiormq

from lectr import broker
from proxy.buffer import EventBuffer
from schema.events import BATCH_OVERHEAD, RequestEvent, batch_body, encode_event

log = logging.getLogger(__name__)

# The broker refused this message: split it, drop a single event.
REFUSALS: tuple[type[BaseException], ...] = (
    aio_pika.exceptions.DeliveryError,
    aio_pika.exceptions.ChannelPreconditionFailed,
)
# The publishing channel closed under a message for another reason: try once more.
CHANNEL_ERRORS: tuple[type[BaseException], ...] = (
    aio_pika.exceptions.ChannelClosed,
    aiormq.exceptions.ChannelInvalidStateError,
)
# The broker, or the way to it, failed: reconnect, then send the same events again.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    *broker.UNREACHABLE_ERRORS,
    ConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,  # a channel that will not open again
)

Send = Callable[[bytes], Awaitable[None]]


@dataclass(slots=True)
class Item:
    body: bytes  # the encoded event
    size: int  # its bytes in the buffer, released once it is sent or dropped
    event: RequestEvent | None  # None: read from the spool (sanitised already)


class Outbox:
    def __init__(self, buffer: EventBuffer, *, batch_size: int, batch_bytes: int) -> None:
        self.buffer = buffer
        self.published = 0
        self.unencodable = 0
        self.refused = 0
        # time.monotonic() of the last event dropped for each reason (0: never), for /health.
        self.last_unencodable_at = 0.0
        self.last_refused_at = 0.0
        # Spooled events (from an earlier run) not yet confirmed.
        self.backlog = 0
        self._items: deque[Item] = deque()
        self._batch_size = batch_size
        self._batch_bytes = batch_bytes

    def __len__(self) -> int:
        return len(self._items)

    def add_spooled(self, bodies: Iterable[bytes]) -> None:
        """Encoded, sanitised events from the spool; they go out before anything else."""
        items = [Item(body, 0, None) for body in bodies]
        self._items.extendleft(reversed(items))
        self.backlog += len(items)

    def add(self, taken: Iterable[tuple[RequestEvent, int]]) -> None:
        """Encode events taken from the buffer; one that cannot be encoded is dropped."""
        for event, size in taken:
            try:
                body = encode_event(event)
                if len(body) + BATCH_OVERHEAD > self._batch_bytes and event.text is not None:
                    body = encode_event(event.uncounted())
            except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError is a TypeError
                self._count_unencodable()
                self.buffer.done(1, size)
                log.warning("dropped an event that cannot be encoded: %s", exc)
                continue
            self._items.append(Item(body, size, event))

    async def send(self, publish: Send) -> None:
        """Send every item, one message after another; returns once all are confirmed
        or dropped. A broker failure propagates and leaves the unconfirmed items here."""
        limit = self._batch_size
        retried = False
        while self._items:
            count, body = self._message(limit)
            try:
                await publish(body)
            except REFUSALS as exc:
                limit = self._refused(count, "the broker refused", exc)
                continue
            except CHANNEL_ERRORS:
                if retried:
                    raise
                retried = True
                continue
            except BROKER_ERRORS:
                raise
            except Exception as exc:  # a local error (a bug): never taken for an outage
                log.exception("sending events failed on a local error")
                limit = self._refused(count, "a local error refused", exc)
                continue
            self._resolve(count)
            self.published += count
            # After a refusal, grow back step by step rather than refuse the same again.
            limit, retried = min(self._batch_size, 2 * limit), False

    def _message(self, limit: int) -> tuple[int, bytes]:
        """The first events (at least one) that fit one message: (count, body)."""
        bodies: list[bytes] = []
        size = BATCH_OVERHEAD - 1
        for item in itertools.islice(self._items, limit):
            size += len(item.body) + 1
            if bodies and size > self._batch_bytes:
                break
            bodies.append(item.body)
        return len(bodies), batch_body(bodies)

    def _refused(self, count: int, who: str, exc: BaseException) -> int:
        """Handle a refused message of ``count`` events: the next message's limit."""
        if count > 1:
            log.warning("%s a message of %d events (%s); sending it in halves", who, count, exc)
            return count // 2
        log.error("%s a single event (%s); dropped it", who, exc)
        if isinstance(exc, REFUSALS):
            self.refused += 1
            self.last_refused_at = time.monotonic()
        else:
            self._count_unencodable()
        self._resolve(1)
        return 1

    def _count_unencodable(self) -> None:
        self.unencodable += 1
        self.last_unencodable_at = time.monotonic()

    def _resolve(self, count: int) -> None:
        """The first ``count`` items are gone: release their room in the buffer."""
        taken, size = 0, 0
        for _ in range(count):
            item = self._items.popleft()
            if item.event is None:
                self.backlog -= 1
            else:
                taken += 1
                size += item.size
        self.buffer.done(taken, size)

    def unsent(self) -> Iterator[bytes]:
        """Every item not yet confirmed, encoded without text (for the spool)."""
        for item in self._items:
            if item.event is None or item.event.text is None:
                yield item.body
            else:
                yield encode_event(item.event.uncounted())
