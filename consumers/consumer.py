"""One consumer: takes messages from the ingest queue and drives the chain.

Messages arrive in an inbox (bounded by the channel's prefetch: the broker sends no
more than ``prefetch`` unacked messages), and the loop hands them to the chain one at a
time, polling it between messages so a partial batch is written on time. Every
``health_interval_s`` the consumer writes its own ``pipeline_health`` row.

Stopping (the ``stop`` event, set on SIGTERM) cancels the subscription, passes on what
already arrived, then joins the chain: the current batch is written and acked. In drain
mode the consumer also stops once the queue is empty and everything is acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from consumers.chain import build_chain
from consumers.clock import Clock, SystemClock
from consumers.dead import DeadLetters
from consumers.decode import Decode
from consumers.retry import is_transient
from consumers.settings import ConsumerSettings
from consumers.stats import Stats, instance_name
from consumers.writer import insert_health
from lectr.broker import UNREACHABLE_ERRORS, Topology

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.05
REPORT_TIMEOUT_S = 5.0


class Consumer:
    """A consumer on ``topology`` (declared on the channel it will consume with).

    ``pool`` may point at a database that is down: writes wait for it. ``clock`` stamps
    rows and times batches and reports. ``stats`` are the counters it reports.
    """

    def __init__(
        self,
        settings: ConsumerSettings,
        pool: asyncpg.Pool,
        topology: Topology,
        *,
        clock: Clock | None = None,
        stats: Stats | None = None,
        instance: str | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.topology = topology
        self.clock = clock or SystemClock()
        self.stats = stats or Stats()
        self.instance = instance or instance_name()
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def run(self, stop: asyncio.Event, *, drain: bool = False) -> None:
        """Consume until ``stop`` is set (or, with ``drain``, the queue is empty).

        After ``stop``, the current batch gets ``shutdown_timeout_s`` to be written and
        acked; if the database is still down by then, the consumer gives up without
        acking, and the broker redelivers those messages to another consumer.
        """
        with ThreadPoolExecutor(
            self.settings.tokenise_threads, thread_name_prefix="lectr-tokenise"
        ) as executor:
            chain = build_chain(
                self.settings,
                pool=self.pool,
                replay_exchange=self.topology.events,
                dead=self.dead_letters(),
                executor=executor,
                stats=self.stats,
                clock=self.clock,
            )
            tag = await self.topology.ingest.consume(self._inbox.put)
            consuming = asyncio.create_task(self._consume(chain, stop, drain))
            stopping = asyncio.create_task(stop.wait())
            finished = False
            try:
                await asyncio.wait({consuming, stopping}, return_when=asyncio.FIRST_COMPLETED)
                await asyncio.wait_for(
                    self._finish(consuming, chain, tag), self.settings.shutdown_timeout_s
                )
                finished = True
            except TimeoutError:
                log.error(
                    "could not finish the current batch within %.0f s of being asked to "
                    "stop; its messages will be redelivered",
                    self.settings.shutdown_timeout_s,
                )
            finally:
                for task in (consuming, stopping):
                    task.cancel()
                await asyncio.gather(consuming, stopping, return_exceptions=True)
                if not finished:
                    chain.terminate()
        await self.report()

    def dead_letters(self) -> DeadLetters:
        """Where this consumer dead-letters: ``.dead``, through its own channel (with
        publisher confirms), so a dead letter is confirmed before the ack that follows."""
        return DeadLetters(
            self.topology.dead.channel.default_exchange,
            self.topology.dead.name,
            self.clock,
            retention_s=self.settings.dead_retention_s,
            instance=self.instance,
        )

    async def _finish(self, consuming: asyncio.Task[None], chain: Decode, tag: str) -> None:
        await consuming
        await self._shutdown(chain, tag)

    async def _consume(self, chain: Decode, stop: asyncio.Event, drain: bool) -> None:
        next_report = self.clock.monotonic() + self.settings.health_interval_s
        while not stop.is_set():
            if self.topology.ingest.channel.is_closed:
                raise ConnectionError("the broker closed the consuming channel")
            message = await self._next_message()
            if message is not None:
                await chain.submit(message)
            await chain.poll()
            if self.clock.monotonic() >= next_report:
                next_report = self.clock.monotonic() + self.settings.health_interval_s
                await self.report(chain.held)
            # Drain mode ends once nothing more is coming; shutdown then writes what is held.
            if drain and message is None and await self._queue_is_empty():
                return

    async def _next_message(self) -> AbstractIncomingMessage | None:
        """The next message, or None after ``POLL_INTERVAL_S`` without one."""
        if not self._inbox.empty():
            return self._inbox.get_nowait()
        try:
            return await asyncio.wait_for(self._inbox.get(), POLL_INTERVAL_S)
        except TimeoutError:
            return None

    async def _queue_is_empty(self) -> bool:
        if not self._inbox.empty():
            return False
        channel = self.topology.ingest.channel
        declared = await channel.declare_queue(self.topology.ingest.name, passive=True)
        return declared.declaration_result.message_count == 0 and self._inbox.empty()

    async def _shutdown(self, chain: Decode, tag: str) -> None:
        with contextlib.suppress(*UNREACHABLE_ERRORS):
            await self.topology.ingest.cancel(tag)
        await asyncio.sleep(POLL_INTERVAL_S)  # deliveries that came before the cancel-ok
        while not self._inbox.empty():
            await chain.submit(self._inbox.get_nowait())
        await chain.join()

    async def report(self, held_events: int = 0) -> None:
        """Write this consumer's ``pipeline_health`` row (skipped if the database is down)."""
        row = self.stats.report(self.instance, self.clock.now(), held_events)
        try:
            async with asyncio.timeout(REPORT_TIMEOUT_S), self.pool.acquire() as conn:
                await insert_health(conn, [row])
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("could not record pipeline health: %s", exc)
