"""Step 6, always the last: after the commit, publish the stored events (sanitised) to
the replay stream, dead-letter the events that cannot be stored, then ack every message
of the batch.

Publishing comes before the ack: a consumer that dies between the two has its messages
redelivered, re-inserts nothing (the ids are stored) and publishes them again, so the
stream may hold an event twice, never miss one (replay is idempotent). Likewise a
message's dead letters (sanitised events, see :mod:`consumers.dead`) are confirmed by
the broker before the message is acked, so one may be dead-lettered twice, never lost.
A message is only ever acked: nothing raw goes back to the broker's own dead-lettering.
"""

from __future__ import annotations

import logging

import aio_pika
from aio_pika.abc import AbstractExchange

from consumers.clock import Clock
from consumers.dead import DeadLetters
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
    def __init__(
        self, exchange: AbstractExchange, dead: DeadLetters, stats: Stats, clock: Clock
    ) -> None:
        self.exchange = exchange
        self.dead = dead
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
            if envelope.dead:
                await self.dead.publish_events(envelope.dead, envelope.delivery)
                self.stats.events_dead += len(envelope.dead)
            await envelope.delivery.ack()

    async def poll(self) -> None:
        return None

    async def join(self) -> None:
        return None

    def terminate(self) -> None:
        return None
