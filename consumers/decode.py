"""Step 1: broker message → :class:`Envelope` of request events or health snapshots.

A message that cannot be decoded at all, or whose type is unknown, is rejected without
requeue, so the broker moves it to the dead-letter queue at once: decoding it again
would fail again. One invalid event inside a batch is dropped and counted, and the
others go on. Reasons are logged; the message body (which may hold prompt text) never is.
"""

from __future__ import annotations

import logging

from aio_pika.abc import AbstractIncomingMessage

from consumers.stats import Stats
from consumers.step import Envelope, Passing, Step
from consumers.validate import column_problem
from schema.events import (
    EVENTS_TYPE,
    HEALTH_TYPE,
    HealthSnapshot,
    InvalidEvent,
    RequestEvent,
    decode_events,
)

log = logging.getLogger(__name__)
MAX_REASON_CHARS = 200


class Decode(Passing):
    def __init__(self, next_step: Step[Envelope], stats: Stats) -> None:
        self.next_step = next_step
        self.stats = stats

    async def submit(self, message: AbstractIncomingMessage) -> None:
        self.stats.messages += 1
        try:
            envelope = self._decode(message)
        except InvalidEvent as exc:
            self.stats.messages_rejected += 1
            log.warning(
                "dead-lettering message %s (delivery %s): %s",
                message.message_id or "-",
                message.delivery_tag,
                str(exc)[:MAX_REASON_CHARS],
            )
            await message.reject(requeue=False)
            return
        await self.next_step.submit(envelope)

    def _decode(self, message: AbstractIncomingMessage) -> Envelope:
        if message.type == HEALTH_TYPE:
            self.stats.health_snapshots += 1
            return Envelope(message, health=[HealthSnapshot.decode(message.body)])
        if message.type not in (EVENTS_TYPE, None):
            raise InvalidEvent(f"unknown message type {message.type[:40]!r}")
        decoded = decode_events(message.body)
        problems = list(decoded.errors)
        events: list[RequestEvent] = []
        for event in decoded.events:
            problem = column_problem(event)
            if problem is None:
                events.append(event)
            else:
                problems.append((-1, f"event {event.id}: {problem}"))
        self.stats.events_received += len(events) + len(problems)
        if problems:
            self.stats.events_invalid += len(problems)
            for index, reason in problems:
                where = f"event #{index}" if index >= 0 else "event"
                log.warning(
                    "dropping an invalid %s of message %s: %s",
                    where,
                    message.message_id or "-",
                    reason[:MAX_REASON_CHARS],
                )
        return Envelope(message, events=events)
