"""Reviewed reference data: model prices and downgrade paths, loaded by migrations.

The files in ``schema/reference/`` are data, reviewed like code. A migration loads a
file by name; once a migration has shipped, its file is never edited. A price change
is a new file (``pricing-YYYY-MM-DD.json``) and a new migration that inserts it: the
new rows get a later ``effective_from``, so past requests keep the price they had.

Prices are USD per million tokens, parsed as :class:`~decimal.Decimal`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson

REFERENCE_DIR = Path(__file__).parent / "reference"
PROVIDERS = ("openai", "anthropic", "gemini", "groq", "mistral")


class ReferenceDataError(ValueError):
    """A reference file that does not hold what the loader expects."""


@dataclass(frozen=True)
class ModelPrice:
    provider: str
    model: str
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None


@dataclass(frozen=True)
class Pricing:
    taken_on: date
    sources: dict[str, str]
    prices: tuple[ModelPrice, ...]

    @property
    def effective_from(self) -> datetime:
        """Prices apply from the start (UTC) of the day they were taken."""
        return datetime(self.taken_on.year, self.taken_on.month, self.taken_on.day, tzinfo=UTC)

    def rows(self) -> list[dict[str, Any]]:
        """Rows for ``model_pricing``."""
        return [
            {
                "provider": p.provider,
                "model": p.model,
                "effective_from": self.effective_from,
                "input_per_mtok": p.input_per_mtok,
                "output_per_mtok": p.output_per_mtok,
                "cached_input_per_mtok": p.cached_input_per_mtok,
                "source": self.sources[p.provider],
            }
            for p in self.prices
        ]


@dataclass(frozen=True)
class Downgrade:
    provider: str
    model: str
    target_model: str
    steps: int


@dataclass(frozen=True)
class Downgrades:
    taken_on: date
    paths: tuple[Downgrade, ...]

    def rows(self, source: str) -> list[dict[str, Any]]:
        """Rows for ``model_downgrades``."""
        return [
            {
                "provider": d.provider,
                "model": d.model,
                "target_model": d.target_model,
                "steps": d.steps,
                "source": source,
            }
            for d in self.paths
        ]


def _read(name: str) -> dict[str, Any]:
    try:
        data = orjson.loads((REFERENCE_DIR / name).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ReferenceDataError(f"{name}: {exc}") from exc
    if not isinstance(data, dict):
        raise ReferenceDataError(f"{name}: expected a JSON object")
    return data


def _price(value: Any, where: str, *, optional: bool = False) -> Decimal | None:
    if value is None and optional:
        return None
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise ReferenceDataError(f"{where}: {value!r} is not a price") from None
    if not price.is_finite() or price < 0:
        raise ReferenceDataError(f"{where}: price must be a non-negative number")
    return price


def _provider(value: Any, where: str) -> str:
    if value not in PROVIDERS:
        raise ReferenceDataError(f"{where}: unknown provider {value!r}")
    return value


def load_pricing(name: str = "pricing.json") -> Pricing:
    data = _read(name)
    try:
        taken_on = date.fromisoformat(data["taken_on"])
        sources = {
            provider: f"{source['url']} (as of {source['as_of']})"
            for provider, source in data["sources"].items()
        }
        entries = data["models"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ReferenceDataError(f"{name}: {exc!r}") from exc
    prices = []
    seen: set[tuple[str, str]] = set()
    for i, entry in enumerate(entries):
        where = f"{name}: models[{i}]"
        provider = _provider(entry.get("provider"), where)
        model = entry.get("model")
        if not isinstance(model, str) or not model:
            raise ReferenceDataError(f"{where}: missing model")
        if (provider, model) in seen:
            raise ReferenceDataError(f"{where}: {provider}/{model} is listed twice")
        if provider not in sources:
            raise ReferenceDataError(f"{where}: no source given for {provider}")
        seen.add((provider, model))
        prices.append(
            ModelPrice(
                provider=provider,
                model=model,
                input_per_mtok=_price(entry.get("input"), f"{where}.input"),  # type: ignore[arg-type]
                output_per_mtok=_price(entry.get("output"), f"{where}.output"),  # type: ignore[arg-type]
                cached_input_per_mtok=_price(
                    entry.get("cached_input"), f"{where}.cached_input", optional=True
                ),
            )
        )
    return Pricing(taken_on=taken_on, sources=sources, prices=tuple(prices))


def load_downgrades(name: str = "downgrades.json", *, pricing: Pricing) -> Downgrades:
    """Load downgrade paths, checking each target is priced and cheaper than its model."""
    data = _read(name)
    try:
        taken_on = date.fromisoformat(data["taken_on"])
        entries = data["paths"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ReferenceDataError(f"{name}: {exc!r}") from exc
    priced = {(p.provider, p.model): p for p in pricing.prices}
    paths = []
    for i, entry in enumerate(entries):
        where = f"{name}: paths[{i}]"
        provider = _provider(entry.get("provider"), where)
        source = priced.get((provider, entry.get("model")))
        target = priced.get((provider, entry.get("target_model")))
        if source is None or target is None:
            raise ReferenceDataError(f"{where}: both models must be in the pricing file")
        if not (
            target.input_per_mtok < source.input_per_mtok
            and target.output_per_mtok < source.output_per_mtok
        ):
            raise ReferenceDataError(f"{where}: {target.model} is not cheaper than {source.model}")
        steps = entry.get("steps")
        if not isinstance(steps, int) or steps < 1:
            raise ReferenceDataError(f"{where}: steps must be a whole number >= 1")
        paths.append(Downgrade(provider, source.model, target.model, steps))
    return Downgrades(taken_on=taken_on, paths=tuple(paths))
