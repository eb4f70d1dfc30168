"""Prices from ``model_pricing``: the version in force at each request's time.

How a request's model is matched to a price, first match wins:

1. the exact ``(provider, model)``, where model is ``actual_model`` (what the provider
   says it ran) or else ``requested_model``;
2. the same name without a provider prefix (``openai/gpt-4o`` through a router, Gemini's
   ``models/gemini-2.5-pro``) — only after the exact name, because some providers price
   prefixed names of their own (Groq's ``openai/gpt-oss-120b``);
3. the name without a release date suffix (``gpt-4o-2024-08-06``,
   ``claude-sonnet-4-5-20250929``, ``…@20250929``): a dated snapshot costs what its
   family alias costs;
4. both of the above.

Azure OpenAI runs OpenAI's models under OpenAI's names, so ``azure`` events are looked up
under ``azure`` first, then under ``openai``. Nothing else is guessed: a model with no
match, or a request made before the model's first price, gets a NULL cost and is counted.

Model names come from clients, so whatever is remembered per name is bounded
(:class:`BoundedSet`, :class:`BoundedDict`: the least recently used names are forgotten).
"""

from __future__ import annotations

import bisect
import logging
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from datetime import datetime
from typing import Generic, TypeVar

import asyncpg

from consumers.clock import Clock
from schema.prices import Price, price_keys

log = logging.getLogger(__name__)

RESOLVED_NAMES = 10_000

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedDict(Generic[K, V]):
    """A dict of at most ``capacity`` keys that forgets the least recently used."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: K) -> V | None:
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key]

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)


class BoundedSet(Generic[K]):
    """A set of at most ``capacity`` members that forgets the least recently added."""

    def __init__(self, capacity: int) -> None:
        self._members: BoundedDict[K, None] = BoundedDict(capacity)

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, member: object) -> bool:
        return member in self._members

    def add(self, member: K) -> bool:
        """Add ``member``; True when it was not there already."""
        if member in self._members:
            self._members.get(member)
            return False
        self._members.put(member, None)
        return True


class PriceBook:
    """Every price version, looked up by provider, model and time. Immutable once built."""

    def __init__(self, rows: Iterable[tuple[str, str, Price]]) -> None:
        versions: dict[tuple[str, str], list[Price]] = {}
        for provider, model, price in rows:
            versions.setdefault((provider, model), []).append(price)
        for prices in versions.values():
            prices.sort(key=lambda p: p.effective_from)
        self._versions = versions
        self._starts = {k: [p.effective_from for p in v] for k, v in versions.items()}
        self._resolved: BoundedDict[tuple[str, str], tuple[str, str] | None] = BoundedDict(
            RESOLVED_NAMES
        )

    def __len__(self) -> int:
        return len(self._versions)

    def price(self, provider: str, model: str | None, at: datetime) -> Price | None:
        """The price in force at ``at``, or None when the model has none then."""
        if not model:
            return None
        key = self._resolve(provider, model)
        if key is None:
            return None
        index = bisect.bisect_right(self._starts[key], at) - 1
        return self._versions[key][index] if index >= 0 else None

    def _resolve(self, provider: str, model: str) -> tuple[str, str] | None:
        """The priced (provider, model) that ``model`` maps to, remembered per name."""
        asked = (provider, model)
        if asked in self._resolved:
            return self._resolved.get(asked)
        resolved = next((key for key in price_keys(provider, model) if key in self._versions), None)
        self._resolved.put(asked, resolved)
        return resolved


LOAD_SQL = """
SELECT provider, model, effective_from, input_per_mtok, output_per_mtok, cached_input_per_mtok
FROM model_pricing
"""


async def load_price_book(conn: asyncpg.Connection | asyncpg.Pool) -> PriceBook:
    rows = await conn.fetch(LOAD_SQL)
    return PriceBook(
        (
            r["provider"],
            r["model"],
            Price(
                r["effective_from"],
                r["input_per_mtok"],
                r["output_per_mtok"],
                r["cached_input_per_mtok"],
            ),
        )
        for r in rows
    )


class PriceCache:
    """The price book, re-read from Postgres every ``refresh_s`` seconds.

    :meth:`get` loads it the first time (raising what the database raises) and then
    refreshes it when stale; a failed refresh keeps the book it has and is tried again
    after another ``refresh_s``, so a database blip never un-prices events.
    """

    def __init__(self, pool: asyncpg.Pool, clock: Clock, refresh_s: float) -> None:
        self._pool = pool
        self._clock = clock
        self._refresh_s = refresh_s
        self._book: PriceBook | None = None
        self._loaded_at = 0.0

    async def get(self) -> PriceBook:
        now = self._clock.monotonic()
        if self._book is None:
            self._book = await load_price_book(self._pool)
            self._loaded_at = now
        elif now - self._loaded_at >= self._refresh_s:
            self._loaded_at = now
            try:
                self._book = await load_price_book(self._pool)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("could not refresh prices, keeping the loaded ones: %s", exc)
        return self._book
