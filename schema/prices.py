"""Model prices as every part reads them: what a price version costs for token counts,
and under which (provider, model) names a request's model finds its price.

The consumer prices each event at the version in force when it was made; the
recommendation engine and the rules dry-run price token sums at today's versions. All
of them follow one convention: cached tokens are part of the input tokens and cost the
cached-input rate when the model has one (the input rate otherwise).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from schema.model_names import candidate_names

PER_MTOK = Decimal(1_000_000)
# Money columns (request_logs.cost_usd, recommendations' costs) keep 8 decimals.
MONEY_QUANTUM = Decimal("0.00000001")
# Providers whose models are priced under another provider's list as well: Azure OpenAI
# runs OpenAI's models under OpenAI's names.
PROVIDER_ALIASES: dict[str, tuple[str, ...]] = {"azure": ("openai",)}

# The version of each price in force at $1.
CURRENT_PRICES_SQL = """
SELECT DISTINCT ON (provider, model)
       provider, model, effective_from, input_per_mtok, output_per_mtok, cached_input_per_mtok
FROM model_pricing
WHERE effective_from <= $1
ORDER BY provider, model, effective_from DESC
"""


def money(value: Decimal) -> Decimal:
    """``value`` rounded as a NUMERIC(…, 8) column stores it."""
    return value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)


def price_keys(provider: str, model: str) -> Iterator[tuple[str, str]]:
    """The (provider, model) names ``model`` may be priced under, in the order they are
    tried: the provider's own list first, then those it shares; the exact name first,
    then its family names (:func:`schema.model_names.candidate_names`)."""
    for owner in (provider, *PROVIDER_ALIASES.get(provider, ())):
        for name in candidate_names(model):
            yield owner, name


@dataclass(frozen=True)
class Price:
    """One version of a model's price, USD per million tokens, from ``effective_from``."""

    effective_from: datetime
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None

    def usd(self, input_tokens: int, output_tokens: int, cached_tokens: int) -> Decimal:
        """What these counts cost, unrounded (for sums rounded once at the end)."""
        cached = min(cached_tokens, input_tokens)
        cached_rate = self.cached_input_per_mtok
        if cached_rate is None:
            cached_rate = self.input_per_mtok
        micro = (
            (input_tokens - cached) * self.input_per_mtok
            + cached * cached_rate
            + output_tokens * self.output_per_mtok
        )
        return micro / PER_MTOK

    def cost(
        self, input_tokens: int | None, output_tokens: int | None, cached_tokens: int | None
    ) -> Decimal | None:
        """What these counts cost, rounded to the money columns' 8 decimals; None when no
        count is known."""
        if input_tokens is None and output_tokens is None:
            return None
        return money(self.usd(input_tokens or 0, output_tokens or 0, cached_tokens or 0))
