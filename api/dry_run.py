"""What a draft routing rule would have done over the org's last 7 days of rollups.

The figures come from ``request_rollups`` only (summed in SQL per feature, provider,
model and task), never from ``request_logs``, so a dry run costs the same whatever the
traffic. A rollup group is the draft's when the draft's conditions match its keys and
no enabled rule before it does: the proxy tries rules in priority order and the first
match takes the request (``proxy.routing.matching_rule``; :func:`matches` is the same
test on rollup keys, and a test compares the two).

Limits of working from rollups, stated so nobody reads more into the figures: a rollup
holds the provider and model a request was *sent* to, after any rule of the time, and
the proxy's extra checks (a provider change needs the caller's key for the target; the
Anthropic-native path never changes provider) are not visible in rollups, so they are
not applied.

Costs are at current prices (the latest ``model_pricing`` row per model), before (the
model the requests were sent for) and after (the draft's target), from the groups'
token sums, with the consumer's conventions: cached tokens are part of the input tokens
and cost the cached-input price when there is one, and model names are matched through
:func:`schema.model_names.candidate_names`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import asyncpg

from api.schemas_rules import DryRun, DryRunModel, RuleCreate, RuleDraft
from schema.prices import CURRENT_PRICES_SQL, Price, money, price_keys

WINDOW = timedelta(days=7)
HOUR = timedelta(hours=1)


class Conditions(Protocol):
    """A rule's conditions; None matches anything."""

    @property
    def match_feature(self) -> str | None: ...
    @property
    def match_task(self) -> str | None: ...
    @property
    def match_provider(self) -> str | None: ...
    @property
    def match_model(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class StoredRule:
    match_feature: str | None
    match_task: str | None
    match_provider: str | None
    match_model: str | None


def matches(rule: Conditions, feature: str, task_type: str, provider: str, model: str) -> bool:
    """Whether ``rule`` matches a rollup's keys as the proxy matches a request: every set
    condition equal (case included). A rollup's ``''`` task or model is the proxy's None
    (no ``X-Lectr-Task``, no model), which only a condition left null matches."""
    task = task_type or None
    sent_model = model or None
    return (
        (rule.match_feature is None or rule.match_feature == feature)
        and (rule.match_task is None or rule.match_task == task)
        and (rule.match_provider is None or rule.match_provider == provider)
        and (rule.match_model is None or rule.match_model == sent_model)
    )


def window(now: datetime) -> tuple[datetime, datetime]:
    """The last 7 days in whole hours, up to the end of the current hour (the window the
    dashboard's 7d summary uses)."""
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + HOUR
    return end - WINDOW, end


_EARLIER_RULES_SQL = """
SELECT match_feature, match_task, match_provider, match_model FROM routing_rules
WHERE org_id = $1 AND enabled AND ($2::int IS NULL OR priority <= $2)
  AND ($3::uuid IS NULL OR id <> $3)
ORDER BY priority, created_at, id
"""
# A draft with a priority comes after every enabled rule with that number or a lower one
# (a rule saved now would: ties go to the older rule); without one, after all of them.
# A draft that edits a rule (``replaces``) takes that rule's place, so it is left out.
_GROUPS_SQL = """
SELECT feature, provider, model, task_type, sum(request_count)::bigint AS requests,
       sum(input_tokens)::bigint AS input_tokens, sum(cached_tokens)::bigint AS cached_tokens,
       sum(output_tokens)::bigint AS output_tokens
FROM request_rollups
WHERE org_id = $1 AND bucket_start >= $2 AND bucket_start < $3
GROUP BY feature, provider, model, task_type
"""


async def dry_run(
    conn: asyncpg.Connection, org_id: uuid.UUID, draft: RuleDraft, now: datetime
) -> DryRun:
    start, end = window(now)
    earlier = [
        StoredRule(**dict(r))
        for r in await conn.fetch(_EARLIER_RULES_SQL, org_id, draft.priority, draft.replaces)
    ]
    groups = await conn.fetch(_GROUPS_SQL, org_id, start, end)
    prices = {
        (r["provider"], r["model"]): Price(
            r["effective_from"],
            r["input_per_mtok"],
            r["output_per_mtok"],
            r["cached_input_per_mtok"],
        )
        for r in await conn.fetch(CURRENT_PRICES_SQL, now)
    }
    return tally(draft, earlier, [dict(g) for g in groups], prices, start, end)


def tally(
    draft: RuleCreate,
    earlier: Sequence[Conditions],
    groups: Sequence[dict[str, Any]],
    prices: dict[tuple[str, str], Price],
    start: datetime,
    end: datetime,
) -> DryRun:
    """The dry run's figures from the rollup groups (pure, so it is easy to reason on)."""
    per_model: dict[str, dict[str, Any]] = {}
    for g in groups:
        keys = (g["feature"], g["task_type"], g["provider"], g["model"])
        if not matches(draft, *keys) or any(matches(rule, *keys) for rule in earlier):
            continue
        row = per_model.setdefault(
            g["model"], {"requests": 0, "before": Decimal(0), "after": Decimal(0), "unpriced": 0}
        )
        row["requests"] += g["requests"]
        before = price_of(prices, g["provider"], g["model"])
        target_provider = draft.target_provider or g["provider"]
        after = price_of(prices, target_provider, draft.target_model or g["model"])
        if before is None or after is None:
            row["unpriced"] += g["requests"]
            continue
        tokens = (g["input_tokens"], g["output_tokens"], g["cached_tokens"])
        row["before"] += before.usd(*tokens)
        row["after"] += after.usd(*tokens)
    by_model = [
        DryRunModel(
            model=model,
            requests=row["requests"],
            cost_before_usd=_usd(row["before"]),
            cost_after_usd=_usd(row["after"]),
            unpriced_requests=row["unpriced"],
        )
        for model, row in sorted(per_model.items(), key=_most_requests_first)
    ]
    return DryRun(
        window_start=start,
        window_end=end,
        matched_requests=sum(m.requests for m in by_model),
        cost_before_usd=_usd(sum((r["before"] for r in per_model.values()), Decimal(0))),
        cost_after_usd=_usd(sum((r["after"] for r in per_model.values()), Decimal(0))),
        by_model=by_model,
    )


def _most_requests_first(item: tuple[str, dict[str, Any]]) -> tuple[int, str]:
    return -item[1]["requests"], item[0]


def price_of(prices: dict[tuple[str, str], Price], provider: str, model: str) -> Price | None:
    """The current price of ``model`` at ``provider`` (or a provider sharing its price
    list), trying the exact name first and then its family names."""
    return next((prices[key] for key in price_keys(provider, model) if key in prices), None)


def _usd(value: Decimal) -> float:
    return float(money(value))
