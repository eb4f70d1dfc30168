"""What the demo organisation's traffic is made of: features, their models and shapes.

Shared by the synthetic history (:mod:`lectr.demo.history`) and the live traffic
(:mod:`lectr.demo.live`), so both look like the same organisation. Every model has a
price in ``schema/reference/pricing.json`` and (except the cheapest tiers) a downgrade
path in ``downgrades.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

# Alias a request names -> the dated snapshot the provider says answered it.
SNAPSHOTS: dict[str, str] = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "claude-sonnet-4-6": "claude-sonnet-4-6",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "gemini-2.5-pro": "gemini-2.5-pro",
    "gemini-2.5-flash": "gemini-2.5-flash",
}

# The path a client calls on the proxy for each provider's models.
ENDPOINTS: dict[str, str] = {
    "openai": "/v1/chat/completions",
    "gemini": "/v1/chat/completions",
    "anthropic": "/v1/messages",
}


def answered_by(model: str) -> str:
    """The model name a provider's response to a request for ``model`` carries."""
    return SNAPSHOTS.get(model, model)


@dataclass(frozen=True)
class ModelUse:
    """One model a feature sends requests to, and how that model behaves."""

    provider: str
    model: str
    # Share of the feature's requests (the shares of a feature add up to 1).
    share: float
    # Typical time to the first byte, and per output token after it.
    ttfb_ms: float
    ms_per_token: float


@dataclass(frozen=True)
class Feature:
    """A product feature that calls LLMs (``X-Lectr-Feature``) and its traffic."""

    name: str
    task_type: str
    models: tuple[ModelUse, ...]
    # Requests an hour at the busiest hour of a weekday.
    peak_per_hour: float
    # How much traffic follows the working day: 1 all of it, 0 flat around the clock.
    diurnal: float
    streaming_share: float
    # Median prompt and completion tokens (log-normally spread around them).
    prompt_tokens: int
    completion_tokens: int
    # Share of a prompt a provider serves from its prompt cache, when it does.
    cached_share: float
    # Chance a request fails in an ordinary hour.
    error_rate: float


FEATURES: tuple[Feature, ...] = (
    Feature(
        "support-bot",
        "generation",
        (
            ModelUse("anthropic", "claude-sonnet-4-6", 0.7, 650.0, 14.0),
            ModelUse("anthropic", "claude-haiku-4-5", 0.3, 380.0, 7.0),
        ),
        peak_per_hour=30.0,
        diurnal=0.9,
        streaming_share=0.85,
        prompt_tokens=1800,
        completion_tokens=320,
        cached_share=0.55,
        error_rate=0.014,
    ),
    Feature(
        "search-summaries",
        "summarisation",
        (
            ModelUse("gemini", "gemini-2.5-flash", 0.7, 420.0, 4.0),
            ModelUse("gemini", "gemini-2.5-pro", 0.3, 900.0, 11.0),
        ),
        peak_per_hour=20.0,
        diurnal=0.8,
        streaming_share=0.3,
        prompt_tokens=3400,
        completion_tokens=260,
        cached_share=0.0,
        error_rate=0.012,
    ),
    Feature(
        "ticket-classifier",
        "classification",
        (ModelUse("openai", "gpt-4o", 1.0, 380.0, 9.0),),
        peak_per_hour=7.0,
        diurnal=0.3,
        streaming_share=0.0,
        prompt_tokens=420,
        completion_tokens=8,
        cached_share=0.0,
        error_rate=0.004,
    ),
    Feature(
        "code-review",
        "reasoning",
        (
            ModelUse("openai", "gpt-4o", 0.55, 700.0, 10.0),
            ModelUse("anthropic", "claude-sonnet-4-6", 0.45, 800.0, 14.0),
        ),
        peak_per_hour=10.0,
        diurnal=1.0,
        streaming_share=0.5,
        prompt_tokens=6500,
        completion_tokens=850,
        cached_share=0.35,
        error_rate=0.016,
    ),
    Feature(
        "email-drafts",
        "generation",
        (
            ModelUse("openai", "gpt-4o-mini", 0.7, 350.0, 6.0),
            ModelUse("gemini", "gemini-2.5-flash", 0.3, 400.0, 4.0),
        ),
        peak_per_hour=12.0,
        diurnal=0.9,
        streaming_share=0.6,
        prompt_tokens=600,
        completion_tokens=300,
        cached_share=0.0,
        error_rate=0.012,
    ),
    Feature(
        "invoice-parser",
        "extraction",
        (ModelUse("openai", "gpt-4o-mini", 1.0, 420.0, 6.0),),
        peak_per_hour=6.0,
        diurnal=0.6,
        streaming_share=0.0,
        prompt_tokens=1400,
        completion_tokens=180,
        cached_share=0.0,
        error_rate=0.01,
    ),
)

# The feature the recommendations job should find a cheaper model for.
RECOMMENDED_FEATURE = "ticket-classifier"


def feature(name: str) -> Feature:
    return next(f for f in FEATURES if f.name == name)
