"""Browsing and re-driving ``<p>.dead`` for ``lectr dead`` (see :mod:`consumers.dead`).

RabbitMQ cannot show a queue without taking its messages, so every command walks the
queue once: it takes each message that was there when it started (``basic.get``, with
manual ack) and then either keeps it, re-drives it or drops it. Kept means put back at
the tail: a copy is published (with a confirm, its remaining expiration, the same
headers and ids) and only then is the original acked. After a full walk the queue holds
the same messages in the same order, and no redelivery counter grew: a requeue (nack)
would count as a delivery, and RabbitMQ 4.x drops a quorum-queue message delivered 20
times. A walk that is interrupted may leave one message twice, never none.

Re-driving publishes a dead letter's events, sanitised, to the ingest route
(``ingest.events``) so the consumers store them (inserts are idempotent), then acks it.
An event that is still not storable is kept. A raw message the broker dead-lettered
before consumers did it themselves (``legacy``: it may hold prompt text) is sanitised
whenever it is re-driven or purged: its storable events go to ingest, the others become
sanitised dead letters, and the raw message is gone.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from consumers.dead import EXPIRES_AT_MS, DeadEntry, DeadLetters, publish_confirmed, read_entry
from consumers.step import DeadEvent
from consumers.validate import column_problem
from lectr.broker import INGEST_EVENTS_KEY, Topology
from schema.events import CONTENT_TYPE, EVENTS_TYPE, RequestEvent, encode_events

log = logging.getLogger(__name__)
# Headers the broker sets on each delivery; a copy starts afresh.
_BROKER_COUNTS = frozenset({"x-delivery-count", "x-acquired-count"})


class Action(enum.Enum):
    KEEP = "keep"
    RETRY = "retry"
    DROP = "drop"


Visit = Callable[[DeadEntry], Action]


@dataclass
class WalkSummary:
    entries: list[DeadEntry] = field(default_factory=list)
    retried_events: int = 0
    dropped: int = 0
    expired: int = 0
    # (key, why) for each entry asked for that could not be re-driven.
    kept: list[tuple[str, str]] = field(default_factory=list)


class DeadQueue:
    """``.dead`` of ``topology``, walked on ``channel`` (which has publisher confirms)."""

    def __init__(self, channel: AbstractChannel, topology: Topology, dead: DeadLetters) -> None:
        self.channel = channel
        self.topology = topology
        self.dead = dead

    async def walk(self, visit: Visit) -> WalkSummary:
        """Take every message that is in ``.dead`` now, once, and do what ``visit`` says."""
        queue = await self.channel.declare_queue(self.topology.dead.name, passive=True)
        count = queue.declaration_result.message_count or 0
        summary = WalkSummary()
        for _ in range(count):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            entry = read_entry(message)
            summary.entries.append(entry)
            await self._settle(message, entry, visit(entry), summary)
        return summary

    async def _settle(
        self,
        message: AbstractIncomingMessage,
        entry: DeadEntry,
        action: Action,
        summary: WalkSummary,
    ) -> None:
        if action is Action.RETRY:
            action = await self._retry(message, entry, summary)
        elif action is Action.DROP:
            summary.dropped += 1
        if action is Action.KEEP:
            await self._put_back(message, summary)
        await message.ack()

    async def _retry(
        self, message: AbstractIncomingMessage, entry: DeadEntry, summary: WalkSummary
    ) -> Action:
        """Re-drive what can be stored; the action left for the original message."""
        if entry.undecodable:
            summary.kept.append((entry.key, "it holds no events (undecodable): purge it"))
            return Action.KEEP
        if entry.invalid and not entry.legacy:
            summary.kept.append((entry.key, f"still not storable: {entry.reason}"))
            return Action.KEEP
        problems = [(e, p) for e in entry.events if (p := column_problem(e)) is not None]
        if problems and not entry.legacy:
            summary.kept.append((entry.key, f"still not storable: {problems[0][1]}"))
            return Action.KEEP
        bad = {e.id for e, _ in problems}
        await self._publish_ingest([e for e in entry.events if e.id not in bad])
        summary.retried_events += len(entry.events) - len(bad)
        # A legacy message goes; what of it cannot be stored stays, sanitised.
        dead = [DeadEvent(e, p) for e, p in problems] + entry.invalid
        if dead:
            await self.dead.publish_events(dead, message)
            summary.kept.extend((_name(d), f"still not storable: {d.reason}") for d in dead)
        return Action.DROP

    async def _publish_ingest(self, events: list[RequestEvent]) -> None:
        if not events:
            return
        message = aio_pika.Message(
            encode_events(events),
            content_type=CONTENT_TYPE,
            type=EVENTS_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await publish_confirmed(self.topology.events, message, INGEST_EVENTS_KEY)

    async def _put_back(self, message: AbstractIncomingMessage, summary: WalkSummary) -> None:
        """Publish a copy of ``message`` at the tail (unless it has expired meanwhile)."""
        expiration: float | None = None
        expires_at_ms = (message.headers or {}).get(EXPIRES_AT_MS)
        if isinstance(expires_at_ms, int):
            expiration = expires_at_ms / 1000 - time.time()
            if expiration <= 0:
                summary.expired += 1
                return
        headers = {k: v for k, v in (message.headers or {}).items() if k not in _BROKER_COUNTS}
        copy = aio_pika.Message(
            message.body,
            headers=headers,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            type=message.type,
            message_id=message.message_id,
            timestamp=message.timestamp,
            app_id=message.app_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            expiration=expiration,
        )
        await publish_confirmed(self.channel.default_exchange, copy, self.topology.dead.name)


def _name(dead: DeadEvent) -> str:
    record = dead.record
    return str(record.id) if isinstance(record, RequestEvent) else str(record.get("id", "-"))


def select(keys: set[str] | None, action: Action) -> Visit:
    """Apply ``action`` to the entries named by ``keys`` (all when None), keep the rest."""

    def visit(entry: DeadEntry) -> Action:
        return action if keys is None or entry.keys & keys else Action.KEEP

    return visit


def keep_all(entry: DeadEntry) -> Action:
    return Action.KEEP
