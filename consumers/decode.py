"""Step 1: broker message → :class:`Envelope` of request events or health snapshots.

First the delivery limit: a message already delivered ``delivery_limit`` times without
being acked (the quorum queue's ``x-delivery-count``) is what crashed or stalled the
consumers before. It is not processed again: its events are dead-lettered at once,
sanitised, one by one (see :mod:`consumers.dead`), and the message is acked.

Then every event is checked (:func:`consumers.validate.column_problem`: text Postgres
refuses, values that do not fit their column). An event that does not decode or fit is
put on the envelope's dead list, without its text, and the others go on; the commit
step dead-letters it before it acks the message. A message that is not an event batch
at all (not JSON, unknown type or version) cannot be split: it is acked and only a
marker of it is dead-lettered, never its body, which may hold text. A health snapshot
that cannot be decoded or stored is dropped and counted (it carries no events).
Reasons are logged; a message body never is.
"""

from __future__ import annotations

import logging

from aio_pika.abc import AbstractIncomingMessage

from consumers.dead import DeadLetters, delivery_count, invalid_records, without_text
from consumers.stats import Stats
from consumers.step import DeadEvent, Envelope, Passing, Step
from consumers.validate import column_problem, health_problem
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
    def __init__(
        self, next_step: Step[Envelope], stats: Stats, dead: DeadLetters, delivery_limit: int
    ) -> None:
        self.next_step = next_step
        self.stats = stats
        self.dead = dead
        self.delivery_limit = delivery_limit

    async def submit(self, message: AbstractIncomingMessage) -> None:
        self.stats.messages += 1
        if delivery_count(message) >= self.delivery_limit:
            await self._give_up(message)
            return
        if message.type == HEALTH_TYPE:
            envelope = self._health(message)
        else:
            try:
                envelope = self._events(message)
            except InvalidEvent as exc:
                await self._undecodable(message, str(exc))
                return
        await self.next_step.submit(envelope)

    async def _give_up(self, message: AbstractIncomingMessage) -> None:
        """Dead-letter what the message holds, without processing it, then ack it."""
        reason = (
            f"delivery limit: the message was delivered {delivery_count(message)} times "
            f"without being stored (LECTR_INGEST_DELIVERY_LIMIT={self.delivery_limit})"
        )
        self.stats.messages_over_limit += 1
        log.error("message %s reached the delivery limit; dead-lettering its events",
                  message.message_id or "-")  # fmt: skip
        if message.type == HEALTH_TYPE:
            self.stats.health_invalid += 1
            await message.ack()
            return
        try:
            envelope = self._events(message, validate=False)
        except InvalidEvent as exc:
            await self._undecodable(message, f"{reason}; {exc}")
            return
        dead = [DeadEvent(e, reason) for e in envelope.events]
        dead += [DeadEvent(d.record, f"{reason}; {d.reason}") for d in envelope.dead]
        self.stats.events_dead += len(dead)
        await self.dead.publish_events(dead, message)
        await message.ack()

    async def _undecodable(self, message: AbstractIncomingMessage, reason: str) -> None:
        self.stats.messages_undecodable += 1
        log.error("dropping message %s (%d bytes), it cannot be decoded: %s",
                  message.message_id or "-", len(message.body),
                  reason[:MAX_REASON_CHARS])  # fmt: skip
        await self.dead.publish_undecodable(message, reason)
        await message.ack()

    def _health(self, message: AbstractIncomingMessage) -> Envelope:
        self.stats.health_snapshots += 1
        try:
            snapshot = HealthSnapshot.decode(message.body)
            problem = health_problem(snapshot)
        except InvalidEvent as exc:
            problem = str(exc)
        if problem is None:
            return Envelope(message, health=[snapshot])
        self.stats.health_invalid += 1
        log.warning("dropping a health snapshot that cannot be stored: %s",
                    problem[:MAX_REASON_CHARS])  # fmt: skip
        return Envelope(message)

    def _events(self, message: AbstractIncomingMessage, *, validate: bool = True) -> Envelope:
        if message.type not in (EVENTS_TYPE, None):
            raise InvalidEvent(f"unknown message type {message.type[:40]!r}")
        decoded = decode_events(message.body)
        envelope = Envelope(message)
        envelope.dead = invalid_records(message.body, decoded.errors) if decoded.errors else []
        for event in decoded.events:
            problem = column_problem(event) if validate else None
            if problem is None:
                envelope.events.append(event)
            else:
                envelope.dead.append(DeadEvent(without_text(event), problem))
        self.stats.events_received += len(envelope.events) + len(envelope.dead)
        if validate and envelope.dead:
            self._log_invalid(message, envelope.dead)
        return envelope

    def _log_invalid(self, message: AbstractIncomingMessage, dead: list[DeadEvent]) -> None:
        self.stats.events_invalid += len(dead)
        for item in dead:
            log.warning("dead-lettering an invalid event %s of message %s: %s",
                        _event_id(item), message.message_id or "-",
                        item.reason[:MAX_REASON_CHARS])  # fmt: skip


def _event_id(item: DeadEvent) -> str:
    record = item.record
    if isinstance(record, RequestEvent):
        return str(record.id)
    return str(record.get("id", "-"))[:40]
