"""Step 3: set each event's cost from the price in force when it was made.

An event whose model has no price gets a NULL cost; the step counts it and logs each
such provider/model once (it remembers the last :data:`REPORTED_MODELS` of them, so a
client sending endless made-up model names cannot grow it). An event whose tokens were
not counted (``token_source = "uncounted"``) also gets a NULL cost and is counted as
unpriced: its cost is unknown, not zero. The price table is read through a
:class:`PriceCache`; the first read waits (retrying) for the database like an insert does.
"""

from __future__ import annotations

import dataclasses
import logging

from consumers.clock import Clock
from consumers.pricing import BoundedSet, PriceBook, PriceCache
from consumers.retry import retry_transient
from consumers.stats import Stats
from consumers.step import Envelope, Passing, Step
from schema.events import UNCOUNTED, RequestEvent
from schema.prices import Price as PriceVersion

log = logging.getLogger(__name__)

REPORTED_MODELS = 1000


def price_of(book: PriceBook, event: RequestEvent) -> PriceVersion | None:
    if event.token_source == UNCOUNTED:
        return None
    return book.price(event.provider, event.actual_model or event.requested_model, event.created_at)


def with_cost(event: RequestEvent, price: PriceVersion | None) -> RequestEvent:
    """``event`` with its cost at ``price`` (None without a price)."""
    cost = None
    if price is not None:
        cost = price.cost(event.input_tokens, event.output_tokens, event.cached_tokens)
    if cost == event.cost_usd and (cost is None) == (event.cost_usd is None):
        return event
    return dataclasses.replace(event, cost_usd=cost)


def priced(book: PriceBook, event: RequestEvent) -> RequestEvent:
    """``event`` with ``cost_usd`` from ``book`` (None when its model has no price)."""
    return with_cost(event, price_of(book, event))


class Price(Passing):
    def __init__(
        self,
        next_step: Step[Envelope],
        prices: PriceCache,
        stats: Stats,
        *,
        clock: Clock,
        retry_max_wait_s: float,
    ) -> None:
        self.next_step = next_step
        self.prices = prices
        self.stats = stats
        self.clock = clock
        self.retry_max_wait_s = retry_max_wait_s
        self._reported: BoundedSet[tuple[str, str | None]] = BoundedSet(REPORTED_MODELS)

    async def submit(self, envelope: Envelope) -> None:
        if envelope.events:
            book = await retry_transient(
                self.prices.get,
                clock=self.clock,
                max_wait_s=self.retry_max_wait_s,
                what="loading prices",
                on_retry=self._count_retry,
            )
            envelope.events = [self._price(book, e) for e in envelope.events]
        await self.next_step.submit(envelope)

    def _price(self, book: PriceBook, event: RequestEvent) -> RequestEvent:
        price = price_of(book, event)
        if price is None:
            self.stats.events_unpriced += 1
            key = (event.provider, event.actual_model or event.requested_model)
            if event.token_source != UNCOUNTED and self._reported.add(key):
                log.warning("no price for %s model %r: its cost stays empty", *key)
        return with_cost(event, price)

    def _count_retry(self) -> None:
        self.stats.database_retries += 1
