"""``lectr consumer``: run one ingest consumer until SIGTERM (or, with ``--drain``,
until the queue is empty).

The process stays up through outages: Postgres down means writes wait and retry (see
:mod:`consumers.insert`); RabbitMQ down means it reconnects with capped backoff, and
whatever it had not acked is redelivered. SIGTERM or SIGINT finishes the current batch,
acks it and exits 0.

An ingest queue declared by an older Lectr (with a broker-side dead-letter path) stops
the consumer with the steps to migrate it; ``--drain`` still consumes such a queue, to
empty it before it is deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections.abc import Mapping

import asyncpg
from aio_pika.abc import AbstractConnection

from consumers.clock import SystemClock
from consumers.consumer import Consumer
from consumers.retry import backoff_s
from consumers.settings import ConsumerSettings
from consumers.stats import Stats
from lectr import broker
from lectr.db import asyncpg_dsn
from lectr.errors import CommandError
from lectr.settings import Settings

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 120.0
# Beyond LECTR_CONSUMER_SHUTDOWN_TIMEOUT_S (the last batch), to stop after SIGTERM:
# closing connections and writing the last health row.
STOP_MARGIN_S = 15.0
# Connecting takes milliseconds; a server that does not answer within this is retried
# (with the capped backoff), so a restored database is noticed within seconds.
CONNECT_TIMEOUT_S = 5.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lectr consumer",
        description="Store request events from the ingest queue in Postgres.",
    )
    parser.add_argument(
        "--drain",
        action="store_true",
        help="stop once the ingest queue is empty and every event is stored",
    )
    return parser


def run(settings: Settings, argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    consumer_settings = ConsumerSettings.from_env()
    try:
        import uvloop
    except ImportError:  # not built for this platform
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        return runner(serve(settings, consumer_settings, drain=args.drain))
    except broker.TopologyError as exc:
        raise CommandError(str(exc)) from exc


def stop_deadline_s(environ: Mapping[str, str]) -> float:
    """How long a consumer needs to stop after SIGTERM (``lectr up`` waits that long)."""
    return ConsumerSettings.from_env(environ).shutdown_timeout_s + STOP_MARGIN_S


async def serve(
    settings: Settings,
    consumer_settings: ConsumerSettings,
    *,
    drain: bool = False,
    stop: asyncio.Event | None = None,
) -> int:
    """Consume until ``stop`` is set (by SIGTERM or SIGINT when not given).

    Raises :class:`lectr.broker.TopologyError` when the broker's queues do not match.
    """
    consumer_settings = dataclasses.replace(
        consumer_settings, delivery_limit=settings.ingest_delivery_limit
    )
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if stop is None else ()
    stop = stop or asyncio.Event()
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    # No connection is opened up front (min_size=0): a database that is down at start-up
    # is waited for like one that goes down later.
    pool = await asyncpg.create_pool(
        asyncpg_dsn(settings.database_url),
        min_size=0,
        # One connection per writer, one for prices and health rows.
        max_size=consumer_settings.writers + 1,
        command_timeout=COMMAND_TIMEOUT_S,
        timeout=CONNECT_TIMEOUT_S,
    )
    assert pool is not None
    stats = Stats()
    try:
        await _consume_with_reconnects(settings, consumer_settings, pool, stats, stop, drain)
    finally:
        await pool.close()
        for signum in signals:
            loop.remove_signal_handler(signum)
    log.info("consumer stopped: %d events stored, %d duplicates, %d dead-lettered",
             stats.events_stored, stats.events_duplicate, stats.events_dead)  # fmt: skip
    return 0


async def _consume_with_reconnects(
    settings: Settings,
    consumer_settings: ConsumerSettings,
    pool: asyncpg.Pool,
    stats: Stats,
    stop: asyncio.Event,
    drain: bool,
) -> None:
    names = broker.BrokerNames(settings.broker_prefix)
    attempt = 0
    while not stop.is_set():
        try:
            connection = await broker.connect(settings.amqp_url)
        except broker.BrokerUnavailable as exc:
            attempt += 1
            wait_s = backoff_s(attempt, consumer_settings.retry_backoff_max_s)
            log.warning("%s; retrying in %.1f s", exc, wait_s)
            await _wait(stop, wait_s)
            continue
        attempt = 0
        try:
            async with connection:
                topology = await _declare(connection, names, settings, consumer_settings, drain)
                log.info("consuming %s", names.ingest)
                consumer = Consumer(
                    consumer_settings, pool, topology, clock=SystemClock(), stats=stats
                )
                await consumer.run(stop, drain=drain)
                return
        except broker.UNREACHABLE_ERRORS as exc:
            log.warning("lost the broker (%s); reconnecting", exc or type(exc).__name__)


async def _declare(
    connection: AbstractConnection,
    names: broker.BrokerNames,
    settings: Settings,
    consumer_settings: ConsumerSettings,
    drain: bool,
) -> broker.Topology:
    """The topology on a new consuming channel; in drain mode an ingest queue of the old
    kind is consumed as it is (the broker closed the first channel on the mismatch)."""
    legacy = False
    while True:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=consumer_settings.prefetch)
        try:
            return await broker.declare_topology(
                channel, names, replay_max_age=settings.replay_max_age, legacy_ingest=legacy
            )
        except broker.LegacyIngestQueue:
            if not drain or legacy:
                raise
            log.warning("%s is an ingest queue of the old kind; draining it as it is",
                        names.ingest)  # fmt: skip
            legacy = True


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
