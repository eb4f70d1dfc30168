"""Hourly rollup rows computed from the events a batch actually inserted.

A :class:`Rollup` is a delta: added to ``request_rollups`` with an upsert, so two
batches (or two consumers) that touch the same hour and key add up. Keys are sorted
so concurrent transactions lock rollup rows in the same order and never deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from schema.events import TOKENISER, RequestEvent
from schema.latency import BUCKET_COUNT, bucket_index

# bucket, org, feature, provider, model, response model, task type, status class
RollupKey = tuple[datetime, str, str, str, str, str, str, str]


def bucket_start(created_at: datetime) -> datetime:
    """The start of the UTC hour holding ``created_at``."""
    return created_at.replace(minute=0, second=0, microsecond=0)


def status_class(status_code: int) -> str:
    """``2xx`` … ``5xx``; ``0xx`` for a request that never got a status."""
    return f"{status_code // 100}xx"


def rollup_model(event: RequestEvent) -> str:
    """The model a rollup counts a request under: the one it was sent for (after any
    rule), else the one asked for."""
    return event.actual_model or event.requested_model or ""


def is_error(event: RequestEvent) -> bool:
    return event.status_code >= 400 or event.status_code == 0 or event.error_category is not None


def rollup_key(event: RequestEvent) -> RollupKey:
    return (
        bucket_start(event.created_at),
        str(event.org_id),
        event.feature,
        event.provider,
        rollup_model(event),
        event.response_model or "",
        event.task_type or "",
        status_class(event.status_code),
    )


@dataclass
class Rollup:
    key: RollupKey
    request_count: int = 0
    error_count: int = 0
    streaming_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    unpriced_count: int = 0
    latency_ms_sum: float = 0.0
    latency_ms_max: float = 0.0
    ttfb_ms_sum: float = 0.0
    ttfb_count: int = 0
    tokens_known_count: int = 0
    tokeniser_count: int = 0
    latency_histogram: list[int] = field(default_factory=lambda: [0] * BUCKET_COUNT)

    def add(self, event: RequestEvent) -> None:
        self.request_count += 1
        self.error_count += is_error(event)
        self.streaming_count += event.streaming
        self.input_tokens += event.input_tokens or 0
        self.output_tokens += event.output_tokens or 0
        self.cached_tokens += event.cached_tokens or 0
        self.tokens_known_count += event.input_tokens is not None or event.output_tokens is not None
        self.tokeniser_count += event.token_source == TOKENISER
        if event.cost_usd is None:
            self.unpriced_count += 1
        else:
            self.cost_usd += event.cost_usd
        self.latency_ms_sum += event.latency_ms
        self.latency_ms_max = max(self.latency_ms_max, event.latency_ms)
        if event.ttfb_ms is not None:
            self.ttfb_ms_sum += event.ttfb_ms
            self.ttfb_count += 1
        self.latency_histogram[bucket_index(event.latency_ms)] += 1


def rollups(events: Iterable[RequestEvent]) -> list[Rollup]:
    """One delta per key for ``events`` (the newly inserted ones), sorted by key."""
    by_key: dict[RollupKey, Rollup] = {}
    for event in events:
        key = rollup_key(event)
        rollup = by_key.get(key)
        if rollup is None:
            rollup = by_key[key] = Rollup(key)
        rollup.add(event)
    return [by_key[k] for k in sorted(by_key)]


def cost_changes(changes: Iterable[tuple[RequestEvent, Decimal | None]]) -> list[Rollup]:
    """Deltas for re-priced rows: each pair is (event with its new cost, its old cost)."""
    by_key: dict[RollupKey, Rollup] = {}
    for event, old_cost in changes:
        key = rollup_key(event)
        rollup = by_key.get(key)
        if rollup is None:
            rollup = by_key[key] = Rollup(key)
        rollup.cost_usd += (event.cost_usd or 0) - (old_cost or 0)
        rollup.unpriced_count += (event.cost_usd is None) - (old_cost is None)
    return [by_key[k] for k in sorted(by_key)]
