"""Step 5: write a batch in one transaction, retrying while Postgres is unreachable.

Up to ``writers`` batches are written at once, each in its own transaction, so the
next batch is decoded while the last one commits; ``submit`` waits while that many are
in flight. Order does not matter: each message is acked on its own, and rollup rows are
locked in key order, so concurrent writers never deadlock.

While the database is down, writes keep retrying with capped backoff and never finish:
nothing is acked, ``submit`` stops returning, the steps before it stop taking messages,
and the broker keeps the backlog. A permanent database error (the batch itself is wrong) is narrowed
down by writing the batch's messages one at a time: a message whose rows still fail is
marked failed (the commit step dead-letters it) and the others are stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import asyncpg

from consumers.clock import Clock
from consumers.retry import retry_transient
from consumers.stats import Stats
from consumers.step import Batch, Envelope, Step
from consumers.writer import HealthRow, write_batch
from schema.events import RequestEvent

log = logging.getLogger(__name__)


class Insert:
    def __init__(
        self,
        next_step: Step[Batch],
        pool: asyncpg.Pool,
        stats: Stats,
        *,
        clock: Clock,
        retry_max_wait_s: float,
        writers: int = 1,
    ) -> None:
        self.next_step = next_step
        self.pool = pool
        self.stats = stats
        self.clock = clock
        self.retry_max_wait_s = retry_max_wait_s
        self.writers = writers
        self._in_flight: dict[asyncio.Task[None], int] = {}

    @property
    def held(self) -> int:
        return sum(self._in_flight.values()) + self.next_step.held

    async def submit(self, batch: Batch) -> None:
        """Start writing ``batch``; first wait for a writer to be free. Raises what a
        finished write raised (a broker failure while acking, a cancelled write)."""
        while len(self._in_flight) >= self.writers:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            self._reap()
        task = asyncio.create_task(self._store(batch))
        self._in_flight[task] = batch.event_count

    def _reap(self) -> None:
        for task in [t for t in self._in_flight if t.done()]:
            del self._in_flight[task]
            task.result()

    async def _store(self, batch: Batch) -> None:
        try:
            batch.inserted = await self._write(batch.envelopes)
        except asyncpg.PostgresError as exc:
            log.error("a batch of %d events failed (%s); writing its messages one by one",
                      batch.event_count, exc)  # fmt: skip
            batch.inserted = await self._write_each(batch.envelopes)
        await self.next_step.submit(batch)

    async def _write(self, envelopes: Sequence[Envelope]) -> int:
        events: list[RequestEvent] = [e for env in envelopes for e in env.events]
        health = [HealthRow(s) for env in envelopes for s in env.health]

        async def attempt() -> int:
            async with self.pool.acquire() as conn:
                return len(await write_batch(conn, events, health))

        return await retry_transient(
            attempt,
            clock=self.clock,
            max_wait_s=self.retry_max_wait_s,
            what=f"writing a batch of {len(events)} events",
            on_retry=self._count_retry,
        )

    async def _write_each(self, envelopes: Sequence[Envelope]) -> int:
        inserted = 0
        for envelope in envelopes:
            try:
                inserted += await self._write([envelope])
            except asyncpg.PostgresError as exc:
                envelope.failed = f"{type(exc).__name__}: {exc}"
        return inserted

    def _count_retry(self) -> None:
        self.stats.database_retries += 1

    async def poll(self) -> None:
        self._reap()
        await self.next_step.poll()

    async def join(self) -> None:
        try:
            if self._in_flight:
                await asyncio.wait(self._in_flight)
            self._reap()
        finally:
            for task in self._in_flight:  # cancelled while waiting: stop the writes too
                task.cancel()
        await self.next_step.join()

    def terminate(self) -> None:
        for task in self._in_flight:
            task.cancel()
        self._in_flight.clear()
        self.next_step.terminate()
