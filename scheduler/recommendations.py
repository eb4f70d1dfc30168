"""The ``recommendations`` job: cheaper models that can likely serve a feature's traffic.

Window: the 30 days of whole UTC hours before the current hour, ``[H - 30 d, H)``. Read
from ``request_rollups`` only (one batch of orgs at a time) plus ``model_pricing`` and
``model_downgrades``, so the cost of a run follows rollup rows, not requests.

Per org x feature x provider x model (the model requests were sent for) with at least
:data:`MIN_REQUESTS` (500) requests in the window:

1. Signals (:mod:`scheduler.recommendation_signals`): requests, mean prompt and
   completion tokens, error rate, p95 latency from the merged histograms, 30-day cost,
   and the dominant task type (one carried by >= 60 % of the requests).
2. Rule (:mod:`scheduler.recommendation_rules`, which documents the task-type rules and
   the heuristics' thresholds: mean prompt <= 1,500 tokens, mean completion <= 400,
   error rate <= 2 %): how many steps down, and the confidence; ``reasoning`` never.
3. Target: a ``model_downgrades`` path of the same provider from the group's model
   (matched as given, then without a provider prefix or date suffix) whose target has a
   current price, the most steps the rule allows first. Projected cost = the group's
   token sums at the target's current price (uncached input at the input rate, cached
   input at the cached rate or the input rate, output at the output rate, per million
   tokens). The current cost is what the rollups recorded. A target that would not
   save money is passed over for a nearer one; when none saves, nothing is recommended.
4. Monthly saving: the window is 30 days, so its saving is the monthly estimate. A group
   whose first traffic is later than the window's start has its saving scaled to 30
   days from the hours it covers (at least one day, so one busy hour is not multiplied
   by 720); ``details.coverage`` says so.

Rows are then reconciled by :mod:`scheduler.recommendation_store`. ``details`` holds the
evidence as JSON: every signal, the thresholds, the rule, the path and the prices used
(decimal amounts as strings, exact), the costs and ``monthly_saving_usd``.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from scheduler.job import JobContext, JobResult
from scheduler.prices import Catalogue, CurrentPrice, Downgrade, load_catalogue
from scheduler.recommendation_rules import Plan, heuristic_misses, plan, rationale, thresholds
from scheduler.recommendation_signals import DOMINANT_SHARE, SIGNAL_KEYS, Signals, group_signals
from scheduler.recommendation_store import Row, save
from scheduler.rollups import HOUR, hour_start, load
from schema.prices import money

MIN_REQUESTS = 500
WINDOW = timedelta(days=30)
MIN_COVERAGE = timedelta(days=1)
ORG_BATCH = 50
_ORGS_SQL = "SELECT id::text FROM organizations ORDER BY id"


async def run(ctx: JobContext) -> JobResult:
    """Recommend, refresh and retire recommendations for every org."""
    now = ctx.now()
    end = hour_start(now)
    start = end - WINDOW
    counts: Counter[str] = Counter(groups=0, opened=0, updated=0, retired=0)
    async with ctx.pool.acquire() as conn:
        catalogue = await load_catalogue(conn, now)
        org_ids = [r[0] for r in await conn.fetch(_ORGS_SQL)]
        for first in range(0, len(org_ids), ORG_BATCH):
            batch = org_ids[first : first + ORG_BATCH]
            frame = await load(conn, start, end, org_ids=batch, by=SIGNAL_KEYS, step=None)
            signals = group_signals(frame, MIN_REQUESTS)
            rows = [r for s in signals if (r := recommend(s, catalogue, start, end)) is not None]
            async with conn.transaction():
                saved = await save(conn, batch, rows, now)
            counts["groups"] += len(signals)
            counts["opened"] += saved.opened
            counts["updated"] += saved.updated
            counts["retired"] += saved.retired
    return JobResult(wrote=dict(counts))


def recommend(
    signals: Signals, catalogue: Catalogue, window_start: datetime, window_end: datetime
) -> Row | None:
    """The recommendation for one group, or None when none is warranted."""
    dominant = signals.dominant
    task_type = dominant[0] if dominant else None
    misses = heuristic_misses(signals)
    chosen = plan(task_type, misses)
    if chosen is None:
        return None
    current_cost = money(Decimal(f"{signals.cost_usd:.8f}"))
    target = _target(signals, chosen, catalogue, current_cost)
    if target is None:
        return None
    path, price, projected = target
    coverage = _coverage(signals.first_hour, window_end)
    saving = current_cost - projected
    monthly = money(saving * coverage["scale"])
    words = rationale(signals, task_type, path.target_model, f"${monthly:,.2f}")
    if coverage["scaled_to_30_days"]:
        words += f" (projected from {coverage['days']:g} days of traffic)"
    if chosen.caveat:
        words += f"; medium confidence: {chosen.caveat}"
    evidence = _details(signals, task_type, chosen, misses, catalogue, path, price)
    evidence.update(
        current_cost_usd=str(current_cost),
        projected_cost_usd=str(projected),
        window_saving_usd=str(saving),
        monthly_saving_usd=str(monthly),
        coverage={**coverage, "scale": str(coverage["scale"])},
    )
    return Row(
        org_id=signals.org_id,
        feature=signals.feature,
        task_type=task_type,
        provider=signals.provider,
        current_model=signals.model,
        recommended_model=path.target_model,
        steps=path.steps,
        window_start=window_start,
        window_end=window_end,
        request_count=signals.requests,
        current_cost_usd=current_cost,
        projected_cost_usd=projected,
        projected_savings_usd=saving,
        rationale=words,
        confidence=chosen.confidence,
        details=orjson.dumps(evidence).decode(),
    )


def _target(
    signals: Signals, chosen: Plan, catalogue: Catalogue, current_cost: Decimal
) -> tuple[Downgrade, CurrentPrice, Decimal] | None:
    """The farthest path the plan allows whose target, at its current price, would
    have cost less than ``current_cost`` for the group's tokens."""
    for path in catalogue.downgrades(signals.provider, signals.model):
        price = catalogue.price(signals.provider, path.target_model)
        if path.steps > chosen.max_steps or price is None:
            continue
        projected = money(
            price.usd(signals.input_tokens, signals.output_tokens, signals.cached_tokens)
        )
        if projected < current_cost:
            return path, price, projected
    return None


def _coverage(first_hour: datetime, window_end: datetime) -> dict[str, Any]:
    """How much of the window the group's traffic spans, and the factor that turns its
    saving into a 30-day one."""
    covered = window_end - first_hour
    scaled = covered < WINDOW
    scale = Decimal(WINDOW // HOUR) / Decimal(max(covered, MIN_COVERAGE) // HOUR)
    return {
        "first_hour": first_hour.isoformat(),
        "hours": covered // HOUR,
        "days": round(covered / timedelta(days=1), 1),
        "scaled_to_30_days": scaled,
        "scale": scale if scaled else Decimal(1),
    }


def _details(
    signals: Signals,
    task_type: str | None,
    chosen: Plan,
    misses: list[str],
    catalogue: Catalogue,
    path: Downgrade,
    price: CurrentPrice,
) -> dict[str, Any]:
    current_price = catalogue.price(signals.provider, path.model)
    dominant = signals.dominant
    return {
        "signals": {
            "requests": signals.requests,
            "errors": signals.errors,
            "error_rate": signals.error_rate,
            "mean_prompt_tokens": signals.mean_prompt_tokens,
            "mean_completion_tokens": signals.mean_completion_tokens,
            "p95_latency_ms": signals.p95_latency_ms,
            "input_tokens": signals.input_tokens,
            "output_tokens": signals.output_tokens,
            "cached_tokens": signals.cached_tokens,
            "tokens_known_requests": signals.tokens_known,
            "unpriced_requests": signals.unpriced,
            "task_shares": signals.task_shares,
            "dominant_task_type": task_type,
            "dominant_share": dominant[1] if dominant else None,
        },
        "thresholds": {
            **thresholds(),
            "dominant_share": DOMINANT_SHARE,
            "min_requests": MIN_REQUESTS,
        },
        "heuristics_agree": not misses,
        "heuristic_misses": misses,
        "rule": chosen.rule,
        "downgrade": {
            "matched_model": path.model,
            "target_model": path.target_model,
            "steps": path.steps,
        },
        "prices": {
            "target": price.evidence(),
            "current_model_now": current_price.evidence() if current_price else None,
        },
    }
