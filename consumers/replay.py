"""Re-applying stored events from the replay stream (``lectr replay``).

The stream holds every event a consumer stored, sanitised and priced, published after
commit. Replay reads it from ``since`` (the stream's own time index: an event is always
published after it was made, so nothing made since then is skipped), keeps the events
made in ``[since, until)`` (and of one org, if asked), and inserts them in batches
exactly as the consumer does: ``ON CONFLICT DO NOTHING``, rollups from the rows actually
inserted. Running it twice changes nothing.

With ``reprice``, each event's cost is computed again from ``model_pricing`` as it is
now (the version in force at the event's time) before it is applied, and rows already
stored get the new cost, their rollups moved by the difference.

Replay stops at the first message published after it started (events stored meanwhile
belong to the live consumers) or when the stream has been quiet for ``idle_timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from consumers.clock import Clock
from consumers.price import priced
from consumers.pricing import PriceBook, load_price_book
from consumers.writer import insert_events, reprice_events, unique_events
from lectr.broker import BrokerNames
from schema.events import EVENTS_TYPE, InvalidEvent, RequestEvent, decode_events

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayOptions:
    since: datetime
    until: datetime | None = None
    org_id: uuid.UUID | None = None
    reprice: bool = False
    batch_size: int = 1000
    idle_timeout_s: float = 2.0

    def wants(self, event: RequestEvent) -> bool:
        return (
            event.created_at >= self.since
            and (self.until is None or event.created_at < self.until)
            and (self.org_id is None or event.org_id == self.org_id)
        )


@dataclass
class ReplaySummary:
    messages: int = 0
    undecodable: int = 0
    events_read: int = 0
    events_selected: int = 0
    inserted: int = 0
    already_stored: int = 0
    repriced: int = 0

    def line(self) -> str:
        text = (
            f"{self.messages} messages, {self.events_read} events read, "
            f"{self.events_selected} selected: {self.inserted} inserted, "
            f"{self.already_stored} already stored"
        )
        if self.repriced:
            text += f", {self.repriced} re-priced"
        if self.undecodable:
            text += f", {self.undecodable} undecodable messages skipped"
        return text


class Replayer:
    """Applies selected events in batches; reports after each batch."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        options: ReplayOptions,
        prices: PriceBook | None,
        progress: Callable[[ReplaySummary], None],
    ) -> None:
        self.pool = pool
        self.options = options
        self.prices = prices
        self.progress = progress
        self.summary = ReplaySummary()
        self._pending: list[RequestEvent] = []

    async def add(self, body: bytes) -> None:
        self.summary.messages += 1
        try:
            decoded = decode_events(body)
        except InvalidEvent as exc:
            self.summary.undecodable += 1
            log.warning("skipping an undecodable replay message: %s", str(exc)[:200])
            return
        self.summary.events_read += len(decoded.events)
        selected = [e for e in decoded.events if self.options.wants(e)]
        self.summary.events_selected += len(selected)
        self._pending.extend(selected)
        if len(self._pending) >= self.options.batch_size:
            await self.flush()

    async def flush(self) -> None:
        events = unique_events(self._pending)
        self._pending = []
        if not events:
            return
        if self.prices is not None:
            events = [priced(self.prices, e) for e in events]
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await insert_events(conn, events)
            if self.prices is not None:
                new_ids = {e.id for e in inserted}
                stored = [e for e in events if e.id not in new_ids]
                self.summary.repriced += await reprice_events(conn, stored)
        self.summary.inserted += len(inserted)
        self.summary.already_stored += len(events) - len(inserted)
        self.progress(self.summary)


async def replay(
    pool: asyncpg.Pool,
    channel: AbstractChannel,
    names: BrokerNames,
    options: ReplayOptions,
    *,
    clock: Clock,
    progress: Callable[[ReplaySummary], None],
) -> ReplaySummary:
    """Read the replay stream from ``options.since`` and apply what it selects."""
    started = clock.now()
    prices = await load_price_book(pool) if options.reprice else None
    replayer = Replayer(pool, options, prices, progress)
    inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    await channel.set_qos(prefetch_count=max(100, options.batch_size))
    stream = await channel.get_queue(names.replay, ensure=False)
    tag = await stream.consume(inbox.put, arguments={"x-stream-offset": options.since})
    try:
        while True:
            try:
                message = await asyncio.wait_for(inbox.get(), options.idle_timeout_s)
            except TimeoutError:
                break
            await message.ack()
            if message.timestamp is not None and message.timestamp > started:
                break
            if message.type in (EVENTS_TYPE, None):
                await replayer.add(message.body)
        await replayer.flush()
    finally:
        await stream.cancel(tag)
    return replayer.summary
