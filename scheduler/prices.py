"""Current model prices and downgrade paths, read from the small reference tables.

The recommendation engine prices a group's traffic at what a cheaper model costs
*today*: the ``model_pricing`` version with the latest ``effective_from`` at or before
the run's ``now``. Downgrade paths come from ``model_downgrades`` as they are; a path
whose target has no current price is useless (its saving cannot be shown) and the
engine skips it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from schema.model_names import candidate_names
from schema.prices import CURRENT_PRICES_SQL, Price

_DOWNGRADES_SQL = "SELECT provider, model, target_model, steps FROM model_downgrades"


@dataclass(frozen=True)
class CurrentPrice(Price):
    """A model's price version in force at the run's time."""

    def evidence(self) -> dict[str, str | None]:
        """The price as JSON-ready strings (exact decimals)."""
        cached = self.cached_input_per_mtok
        return {
            "effective_from": self.effective_from.isoformat(),
            "input_per_mtok": str(self.input_per_mtok),
            "output_per_mtok": str(self.output_per_mtok),
            "cached_input_per_mtok": None if cached is None else str(cached),
        }


@dataclass(frozen=True)
class Downgrade:
    """``model`` (the reference name the client's model matched) -> ``target_model``."""

    model: str
    target_model: str
    steps: int


class Catalogue:
    """Current prices and downgrade paths, looked up by provider and model name."""

    def __init__(
        self,
        prices: dict[tuple[str, str], CurrentPrice],
        downgrades: dict[tuple[str, str], list[Downgrade]],
    ) -> None:
        self._prices = prices
        self._downgrades = downgrades

    def price(self, provider: str, model: str) -> CurrentPrice | None:
        """The current price of exactly ``(provider, model)``."""
        return self._prices.get((provider, model))

    def downgrades(self, provider: str, model: str) -> list[Downgrade]:
        """The paths from ``model`` (matched under its first name that has any, see
        :func:`schema.model_names.candidate_names`) to a priced target of the same
        provider, most steps first."""
        for name in candidate_names(model):
            paths = self._downgrades.get((provider, name))
            if paths:
                priced = [p for p in paths if (provider, p.target_model) in self._prices]
                return sorted(priced, key=lambda p: -p.steps)
        return []


async def load_catalogue(conn: asyncpg.Connection, now: datetime) -> Catalogue:
    """Prices in force at ``now`` and every downgrade path."""
    prices = {
        (r["provider"], r["model"]): CurrentPrice(
            r["effective_from"],
            r["input_per_mtok"],
            r["output_per_mtok"],
            r["cached_input_per_mtok"],
        )
        for r in await conn.fetch(CURRENT_PRICES_SQL, now)
    }
    downgrades: dict[tuple[str, str], list[Downgrade]] = {}
    for r in await conn.fetch(_DOWNGRADES_SQL):
        path = Downgrade(r["model"], r["target_model"], r["steps"])
        downgrades.setdefault((r["provider"], r["model"]), []).append(path)
    return Catalogue(prices, downgrades)
