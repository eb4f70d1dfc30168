"""Step 6, always the last: after the commit, publish the stored events (sanitised) to
the replay stream, then settle every message of the batch.

Publishing comes before the ack: a consumer that dies between the two has its messages
redelivered, re-inserts nothing (the ids are stored) and publishes them again, so the
stream may hold an event twice, never miss one (replay is idempotent). A message the
insert step could not write is rejected without requeue: it goes to the dead-letter queue.
"""

from __future__ import annotations

import logging

import aio_pika
from aio_pika.abc import AbstractExchange

from consumers.clock import Clock
from consumers.stats import Stats
from consumers.step import Batch
from lectr.broker import REPLAY_EVENTS_KEY
from schema.events import CONTENT_TYPE, EVENTS_TYPE, encode_events

log = logging.getLogger(__name__)


def replay_message(body: bytes, clock: Clock) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        content_type=CONTENT_TYPE,
        type=EVENTS_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        timestamp=clock.now(),
    )


class Commit:
    def __init__(self, exchange: AbstractExchange, stats: Stats, clock: Clock) -> None:
        self.exchange = exchange
        self.stats = stats
        self.clock = clock

    @property
    def held(self) -> int:
        return 0

    async def submit(self, batch: Batch) -> None:
        events = batch.events  # sanitised since the tokenise step
        if events:
            await self.exchange.publish(
                replay_message(encode_events(events), self.clock), routing_key=REPLAY_EVENTS_KEY
            )
        self.stats.observe_commit(events, batch.inserted, self.clock.now())
        for envelope in batch.envelopes:
            if envelope.failed is None:
                await envelope.delivery.ack()
            else:
                self.stats.messages_rejected += 1
                log.error("dead-lettering a message whose rows cannot be stored: %s",
                          envelope.failed[:200])  # fmt: skip
                await envelope.delivery.reject(requeue=False)

    async def poll(self) -> None:
        return None

    async def join(self) -> None:
        return None

    def terminate(self) -> None:
        return None
