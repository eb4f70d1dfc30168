"""Step 5: write a batch in one transaction, retrying while Postgres is unreachable.

Up to ``writers`` batches are written at once, each in its own transaction, so the
next batch is decoded while the last one commits; ``submit`` waits while that many are
in flight. Order does not matter: each message is acked on its own, and rollup rows are
locked in key order, so concurrent writers never deadlock.

While the database is down, writes keep retrying with capped backoff and never finish:
nothing is acked, ``submit`` stops returning, the steps before it stop taking messages,
and the broker keeps the backlog; so does an error about the database itself (a missing
column before ``lectr migrate``, see :func:`consumers.retry.is_data_error`). A data
error (Postgres refuses something in the batch) is narrowed down per event, not per
message (a message holds events of many orgs): the batch is split in halves, each
written on its own, and a half that fails is split again, down to single events and
health rows. An event Postgres still refuses alone moves to its envelope's dead list
(the commit step dead-letters it, sanitised); a refused health row is dropped and
counted; everything else is stored.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from consumers.clock import Clock
from consumers.retry import is_not_data_error, retry_transient
from consumers.stats import Stats
from consumers.step import Batch, DeadEvent, Envelope, Step
from consumers.writer import HealthRow, write_batch
from schema.events import HealthSnapshot, RequestEvent

log = logging.getLogger(__name__)
MAX_REASON_CHARS = 300


@dataclass(frozen=True)
class _Unit:
    """The smallest thing a batch is narrowed down to: one event or one health row."""

    envelope: Envelope
    event: RequestEvent | None = None
    health: HealthSnapshot | None = None


# asyncpg's own message for a value it cannot send quotes the value: keep only its start.
_ARGUMENT_RE = re.compile(r"^(invalid input for query argument \$\d+)")


def _reason(exc: BaseException) -> str:
    """Why Postgres refused, without any value: the first line of its message names the
    constraint or the kind of bad value; the row it quotes after that is left out."""
    message = str(exc).split("\n", 1)[0]  # the DETAIL line quotes the failing row
    quoted = _ARGUMENT_RE.match(message)
    if quoted:
        message = quoted.group(1)
    return f"{type(exc).__name__}: {message[:MAX_REASON_CHARS]}"


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
        units = [_Unit(env, event=e) for env in batch.envelopes for e in env.events]
        units += [_Unit(env, health=h) for env in batch.envelopes for h in env.health]
        try:
            batch.inserted = await self._write(units)
        except asyncpg.PostgresError as exc:
            log.error("a batch of %d events failed (%s); narrowing it down per event",
                      batch.event_count, _reason(exc))  # fmt: skip
            batch.inserted = await self._narrow(units, exc)
        await self.next_step.submit(batch)

    async def _write(self, units: Sequence[_Unit]) -> int:
        events: list[RequestEvent] = [u.event for u in units if u.event is not None]
        health = [HealthRow(u.health) for u in units if u.health is not None]

        async def attempt() -> int:
            async with self.pool.acquire() as conn:
                return len(await write_batch(conn, events, health))

        return await retry_transient(
            attempt,
            clock=self.clock,
            max_wait_s=self.retry_max_wait_s,
            what=f"writing a batch of {len(events)} events",
            on_retry=self._count_retry,
            # A database that cannot take any batch (not migrated yet, no privilege)
            # is waited for like one that is down: only data errors are the events'.
            retryable=is_not_data_error,
        )

    async def _narrow(self, units: Sequence[_Unit], exc: asyncpg.PostgresError) -> int:
        """Write ``units`` (which failed together with ``exc``) in halves, and each half
        that fails in halves again; set aside what fails alone. Returns how many events
        were new."""
        if len(units) == 1:
            self._refuse(units[0], exc)
            return 0
        inserted = 0
        middle = len(units) // 2
        for half in (units[:middle], units[middle:]):
            try:
                inserted += await self._write(half)
            except asyncpg.PostgresError as half_exc:
                inserted += await self._narrow(half, half_exc)
        return inserted

    def _refuse(self, unit: _Unit, exc: asyncpg.PostgresError) -> None:
        reason = f"refused by Postgres: {_reason(exc)}"
        envelope = unit.envelope
        if unit.event is not None:
            envelope.events = [e for e in envelope.events if e is not unit.event]
            envelope.dead.append(DeadEvent(unit.event, reason))
            log.error("event %s cannot be stored, dead-lettering it: %s",
                      unit.event.id, reason[:200])  # fmt: skip
        elif unit.health is not None:
            envelope.health = [h for h in envelope.health if h is not unit.health]
            self.stats.health_invalid += 1
            log.error("dropping a health row that cannot be stored: %s", reason[:200])

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
