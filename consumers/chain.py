"""The consumer's chain of steps, built in one place.

    decode → tokenise (threads) → price → batch (size / interval) → insert → commit

Each step hands its output to the next; the commit step (publish to the replay stream,
dead-letter what cannot be stored, then ack) is always last, so nothing is acked before
its rows are committed or its dead letters confirmed.
"""

from __future__ import annotations

from concurrent.futures import Executor

import asyncpg
from aio_pika.abc import AbstractExchange

from consumers.batch import BatchStep
from consumers.clock import Clock
from consumers.commit import Commit
from consumers.dead import DeadLetters
from consumers.decode import Decode
from consumers.insert import Insert
from consumers.price import Price
from consumers.pricing import PriceCache
from consumers.settings import ConsumerSettings
from consumers.stats import Stats
from consumers.tokenise import Tokenise


def build_chain(
    settings: ConsumerSettings,
    *,
    pool: asyncpg.Pool,
    replay_exchange: AbstractExchange,
    dead: DeadLetters,
    executor: Executor,
    stats: Stats,
    clock: Clock,
) -> Decode:
    """The first step of a new chain; the rest hang off it."""
    retry_max_wait_s = settings.retry_backoff_max_s
    commit = Commit(replay_exchange, dead, stats, clock)
    insert = Insert(
        commit,
        pool,
        stats,
        clock=clock,
        retry_max_wait_s=retry_max_wait_s,
        writers=settings.writers,
    )
    batch = BatchStep(insert, clock, settings.batch_size, settings.flush_interval_s)
    prices = PriceCache(pool, clock, settings.price_refresh_s)
    price = Price(batch, prices, stats, clock=clock, retry_max_wait_s=retry_max_wait_s)
    tokenise = Tokenise(price, executor, stats, max_pending=2 * settings.tokenise_threads)
    return Decode(tokenise, stats, dead, settings.delivery_limit)
