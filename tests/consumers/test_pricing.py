"""Prices: the version in force at the event's time, name matching, the refresh cache."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from consumers.price import REPORTED_MODELS, Price, priced
from consumers.pricing import (
    RESOLVED_NAMES,
    BoundedDict,
    BoundedSet,
    PriceBook,
    PriceCache,
    load_price_book,
)
from consumers.stats import Stats
from consumers.step import Envelope
from schema.model_names import candidate_names
from schema.prices import Price as PriceVersion
from tests.consumers.conftest import ManualClock, make_event

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 6, 1, tzinfo=UTC)


def _price(start: datetime, inp: str, out: str, cached: str | None = None) -> PriceVersion:
    return PriceVersion(start, Decimal(inp), Decimal(out), Decimal(cached) if cached else None)


BOOK_ROWS = [
    ("openai", "gpt-4o", _price(T0, "2.50", "10.00", "1.25")),
    ("openai", "gpt-4o", _price(T1, "2.00", "8.00", "1.00")),
    ("anthropic", "claude-sonnet-4-5", _price(T0, "3.00", "15.00")),
    ("groq", "openai/gpt-oss-120b", _price(T0, "0.15", "0.60")),
    ("gemini", "gemini-2.5-pro", _price(T0, "1.25", "10.00")),
    ("azure", "gpt-4o", _price(T0, "2.75", "11.00")),
]
BOOK = PriceBook(BOOK_ROWS)


@pytest.mark.parametrize(
    ("at", "expected_input"),
    [
        (T0, Decimal("2.50")),
        (T1 - timedelta(microseconds=1), Decimal("2.50")),
        (T1, Decimal("2.00")),
        (T1 + timedelta(days=400), Decimal("2.00")),
    ],
)
def test_the_version_in_force_at_the_event_time(at: datetime, expected_input: Decimal) -> None:
    price = BOOK.price("openai", "gpt-4o", at)
    assert price is not None and price.input_per_mtok == expected_input


def test_before_the_first_price_there_is_none() -> None:
    assert BOOK.price("openai", "gpt-4o", T0 - timedelta(seconds=1)) is None


@pytest.mark.parametrize(
    ("provider", "model", "priced_as"),
    [
        ("openai", "gpt-4o-2024-08-06", ("openai", "gpt-4o")),
        ("anthropic", "claude-sonnet-4-5-20250929", ("anthropic", "claude-sonnet-4-5")),
        ("anthropic", "claude-sonnet-4-5@20250929", ("anthropic", "claude-sonnet-4-5")),
        ("gemini", "models/gemini-2.5-pro", ("gemini", "gemini-2.5-pro")),
        ("openai", "openai/gpt-4o", ("openai", "gpt-4o")),
        ("groq", "openai/gpt-oss-120b", ("groq", "openai/gpt-oss-120b")),
        ("azure", "gpt-4o", ("azure", "gpt-4o")),
    ],
)
def test_model_names_map_to_their_price(
    provider: str, model: str, priced_as: tuple[str, str]
) -> None:
    assert BOOK.price(provider, model, T0) == BOOK.price(*priced_as, T0)


def test_azure_without_its_own_price_uses_openai_list_prices() -> None:
    book = PriceBook([("openai", "gpt-4o-mini", _price(T0, "0.15", "0.60"))])
    assert book.price("azure", "gpt-4o-mini-2024-07-18", T0) == book.price(
        "openai", "gpt-4o-mini", T0
    )


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o-ultra"),  # no fuzzy matching
        ("mistral", "gpt-4o"),  # another provider's model
        ("openai", None),
        ("openai", ""),
    ],
)
def test_unknown_models_have_no_price(provider: str, model: str | None) -> None:
    assert BOOK.price(provider, model, T1) is None


def test_candidate_names_in_order() -> None:
    assert list(candidate_names("openai/gpt-4o-2024-08-06")) == [
        "openai/gpt-4o-2024-08-06",
        "gpt-4o-2024-08-06",
        "openai/gpt-4o",
        "gpt-4o",
    ]


def test_cost_uses_the_cached_rate_for_cached_input() -> None:
    price = _price(T0, "2.50", "10.00", "1.25")
    # 1000 input of which 400 cached, 500 output
    expected = (600 * Decimal("2.50") + 400 * Decimal("1.25") + 500 * Decimal("10")) / 10**6
    assert price.cost(1000, 500, 400) == expected.quantize(Decimal("0.00000001"))


def test_cost_without_a_cached_rate_charges_the_input_rate() -> None:
    price = _price(T0, "3.00", "15.00")
    assert price.cost(1000, 0, 1000) == Decimal("0.003")


def test_no_token_counts_means_no_cost() -> None:
    assert _price(T0, "3", "15").cost(None, None, None) is None
    assert _price(T0, "3", "15").cost(None, 1000, None) == Decimal("0.015")


def test_an_event_of_an_unknown_model_gets_a_null_cost() -> None:
    event = make_event(actual_model="gpt-9000", cost_usd=Decimal("1"), input_tokens=5)
    assert priced(BOOK, event).cost_usd is None


def test_the_actual_model_is_priced_before_the_requested_one() -> None:
    event = make_event(
        created_at=T1, requested_model="gpt-4o", actual_model="gpt-4o-2024-08-06",
        input_tokens=1_000_000, output_tokens=0,
    )  # fmt: skip
    assert priced(BOOK, event).cost_usd == Decimal("2.00")


async def test_loads_the_reference_prices(db: asyncpg.Connection) -> None:
    book = await load_price_book(db)
    price = book.price("openai", "gpt-4o-mini", datetime(2026, 11, 27, tzinfo=UTC))
    assert price is not None and price.output_per_mtok == Decimal("0.60")


async def test_the_cache_rereads_prices_every_refresh_interval(
    db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    clock = ManualClock()
    model = f"test-model-{uuid.uuid4().hex[:8]}"
    cache = PriceCache(pool, clock, refresh_s=300)
    assert (await cache.get()).price("openai", model, T1) is None
    await db.execute(
        "INSERT INTO model_pricing (provider, model, effective_from, input_per_mtok, "
        "output_per_mtok, source) VALUES ('openai', $1, $2, 1, 2, 'test')",
        model,
        T0,
    )
    try:
        clock.advance(299)
        assert (await cache.get()).price("openai", model, T1) is None
        clock.advance(1)
        assert (await cache.get()).price("openai", model, T1) is not None
    finally:  # the session's price table is shared with other tests
        await db.execute("DELETE FROM model_pricing WHERE model = $1", model)


class _FailingPool:
    def __init__(self) -> None:
        self.calls = 0

    async def fetch(self, *args: object) -> list:
        self.calls += 1
        if self.calls > 1:
            raise ConnectionRefusedError("down")
        return []


async def test_a_failed_refresh_keeps_the_loaded_prices() -> None:
    clock = ManualClock()
    failing = _FailingPool()
    cache = PriceCache(failing, clock, refresh_s=300)  # type: ignore[arg-type]
    first = await cache.get()
    clock.advance(300)
    assert await cache.get() is first
    assert failing.calls == 2
    clock.advance(10)
    await cache.get()
    assert failing.calls == 2  # the next attempt waits another interval


async def test_uncounted_tokens_mean_no_cost_and_an_unpriced_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    out, stats = _Collect(), Stats()
    step = Price(out, _Fixed(BOOK), stats, clock=ManualClock(), retry_max_wait_s=1)  # type: ignore[arg-type]
    event = make_event(actual_model="gpt-4o", text=None, token_source="uncounted", cost_usd=None)
    await step.submit(Envelope(None, events=[event]))  # type: ignore[arg-type]
    (priced_event,) = out.items[0].events
    assert priced_event.cost_usd is None and priced_event.token_source == "uncounted"
    assert stats.events_unpriced == 1 and "no price" not in caplog.text


async def test_the_unknown_models_remembered_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    out, stats = _Collect(), Stats()
    book = PriceBook(BOOK_ROWS)
    step = Price(out, _Fixed(book), stats, clock=ManualClock(), retry_max_wait_s=1)  # type: ignore[arg-type]
    names = [f"made-up-{i}" for i in range(REPORTED_MODELS + 500)]
    for name in names:
        event = make_event(actual_model=name, text=None, input_tokens=1, output_tokens=1)
        await step.submit(Envelope(None, events=[event]))  # type: ignore[arg-type]
    assert stats.events_unpriced == len(names)
    assert len(step._reported) == REPORTED_MODELS
    assert len(book._resolved) <= RESOLVED_NAMES
    assert caplog.text.count("no price for") == len(names)  # each logged once
    # A name still remembered is not logged again.
    await step.submit(Envelope(None, events=[make_event(actual_model=names[-1], text=None)]))  # type: ignore[arg-type]
    assert caplog.text.count("no price for") == len(names)


def test_bounded_collections_forget_the_least_recently_used() -> None:
    seen: BoundedSet[str] = BoundedSet(2)
    assert seen.add("a") and seen.add("b") and not seen.add("a")
    assert seen.add("c")  # forgets b, used least recently
    assert "a" in seen and "b" not in seen and len(seen) == 2
    table: BoundedDict[str, int] = BoundedDict(2)
    table.put("x", 1)
    table.put("y", 2)
    assert table.get("x") == 1
    table.put("z", 3)
    assert "y" not in table and table.get("x") == 1 and len(table) == 2


class _Fixed:
    def __init__(self, book: PriceBook) -> None:
        self.book = book

    async def get(self) -> PriceBook:
        return self.book


class _Collect:
    def __init__(self) -> None:
        self.items: list[Envelope] = []

    async def submit(self, item: Envelope) -> None:
        self.items.append(item)
