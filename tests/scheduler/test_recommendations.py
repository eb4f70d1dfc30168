"""The recommendations job on synthetic traffic: rules per task type, the 500-request
floor, the target from model_downgrades, costs from model_pricing, and the lifecycle of
rows (refreshed, dismissed, retired). Reference data is the migrated database's own."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import asyncpg
import orjson
import pytest

from scheduler.recommendations import run
from scheduler.rollups import hour_start
from schema.events import RequestEvent
from schema.latency import bucket_index
from tests.scheduler.conftest import NOW, job_context, new_org, request, store

END = hour_start(NOW)
START = END - timedelta(days=30)
# Traffic from the window's first hour to its last, so the 30 days are covered.
SPREAD = [START, START + timedelta(days=7), START + timedelta(days=14),
          START + timedelta(days=21), END - timedelta(hours=1)]  # fmt: skip
Q = Decimal("0.00000001")
MODEL = "gpt-4o"


@dataclasses.dataclass(frozen=True)
class PriceRow:
    input: Decimal
    output: Decimal
    cached: Decimal | None

    def cost(self, prompt: int, completion: int, cached: int) -> Decimal:
        cached_rate = self.input if self.cached is None else self.cached
        usd = (prompt - cached) * self.input + cached * cached_rate + completion * self.output
        return (usd / 10**6).quantize(Q, rounding=ROUND_HALF_EVEN)


async def price_now(conn: asyncpg.Pool, model: str, provider: str = "openai") -> PriceRow:
    row = await conn.fetchrow(
        """SELECT input_per_mtok, output_per_mtok, cached_input_per_mtok FROM model_pricing
           WHERE provider = $1 AND model = $2 AND effective_from <= $3
           ORDER BY effective_from DESC LIMIT 1""",
        provider,
        model,
        NOW,
    )
    assert row is not None, f"no price for {provider}/{model}"
    return PriceRow(*row.values())


async def downgrade_target(conn: asyncpg.Pool, model: str, steps: int) -> str:
    return await conn.fetchval(
        """SELECT target_model FROM model_downgrades
           WHERE provider = 'openai' AND model = $1 AND steps = $2""",
        model,
        steps,
    )


def traffic(
    org_id: uuid.UUID,
    count: int,
    *,
    task: str | None,
    prompt: int = 300,
    completion: int = 40,
    cached: int = 0,
    price: PriceRow | None,
    hours: list[datetime] = SPREAD,
    model: str = MODEL,
    feature: str = "chat",
    errors_every: int = 0,
) -> list[RequestEvent]:
    """``count`` requests for ``model`` spread round-robin over ``hours``; each costs what
    ``price`` says (None: unpriced); every ``errors_every``-th one is a 500."""
    cost = price.cost(prompt, completion, cached) if price else None
    events = []
    for i in range(count):
        failed = errors_every and i % errors_every == 0
        events.append(
            request(
                org_id,
                hours[i % len(hours)] + timedelta(seconds=i % 3600, microseconds=i),
                requested_model=model,
                actual_model=model,
                response_model=f"{model}-2024-08-06",
                task_type=task,
                feature=feature,
                input_tokens=prompt,
                output_tokens=completion,
                cached_tokens=cached,
                cost_usd=cost,
                status_code=500 if failed else 200,
            )
        )
    return events


async def rows_of(pool: asyncpg.Pool, org_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT * FROM recommendations WHERE org_id = $1 ORDER BY created_at, recommended_model",
        org_id,
    )
    out = []
    for row in rows:
        record = dict(row)
        record["details"] = orjson.loads(record["details"])
        out.append(record)
    return out


async def one_open(pool: asyncpg.Pool, org_id: uuid.UUID) -> dict[str, Any]:
    rows = [r for r in await rows_of(pool, org_id) if r["status"] == "open"]
    assert len(rows) == 1, rows
    return rows[0]


@pytest.fixture
async def gpt4o(pool: asyncpg.Pool) -> PriceRow:
    return await price_now(pool, MODEL)


# task type, mean prompt, mean completion, errors every n-th, expected (steps, confidence)
CASES = [
    ("classification", 300, 5, 0, (2, "high")),
    ("classification", 4000, 900, 0, (2, "high")),
    ("extraction", 300, 60, 0, (1, "high")),
    ("extraction", 3000, 60, 0, (1, "medium")),
    ("summarisation", 1200, 150, 0, (1, "high")),
    ("summarisation", 6000, 300, 0, (1, "medium")),
    ("generation", 300, 200, 0, (1, "medium")),
    ("generation", 300, 900, 0, None),
    ("generation", 2500, 200, 0, None),
    ("reasoning", 200, 20, 0, None),
    (None, 300, 40, 0, (1, "medium")),
    (None, 300, 40, 100, (1, "medium")),  # 1 % errors: low enough
    (None, 300, 40, 25, None),  # 4 % errors
    (None, 3000, 40, 0, None),
    ("translation", 300, 40, 0, (1, "medium")),  # not a task type Lectr knows
]


@pytest.mark.parametrize(("task", "prompt", "completion", "errors_every", "expected"), CASES)
async def test_the_rule_of_each_task_type(
    pool: asyncpg.Pool,
    gpt4o: PriceRow,
    task: str | None,
    prompt: int,
    completion: int,
    errors_every: int,
    expected: tuple[int, str] | None,
) -> None:
    org = await new_org(pool)
    await store(
        pool,
        traffic(org, 500, task=task, prompt=prompt, completion=completion, price=gpt4o,
                errors_every=errors_every),
    )  # fmt: skip
    result = await run(job_context(pool))
    assert set(result.wrote) == {"groups", "opened", "updated", "retired"}
    rows = await rows_of(pool, org)
    if expected is None:
        assert rows == []
        return
    steps, confidence = expected
    [row] = rows
    assert (row["status"], row["steps"], row["confidence"]) == ("open", steps, confidence)
    assert row["recommended_model"] == await downgrade_target(pool, MODEL, steps)
    assert (row["provider"], row["current_model"], row["feature"]) == ("openai", MODEL, "chat")
    assert row["task_type"] == task
    assert row["request_count"] == 500
    assert (row["window_start"], row["window_end"]) == (START, END)
    signals = row["details"]["signals"]
    assert signals["mean_prompt_tokens"] == prompt
    assert signals["mean_completion_tokens"] == completion
    assert signals["error_rate"] == pytest.approx(1 / errors_every if errors_every else 0)
    assert f"prompts average {prompt:,} tokens, completions {completion:,}" in row["rationale"]
    assert f"{row['recommended_model']} can likely do this for $" in row["rationale"]
    if confidence == "medium":
        assert "medium confidence" in row["rationale"]


async def test_classification_costs_and_evidence_match_a_hand_computation(
    pool: asyncpg.Pool, gpt4o: PriceRow
) -> None:
    org = await new_org(pool)
    events = traffic(org, 1240, task="classification", prompt=310, completion=12, cached=100,
                     price=gpt4o)  # fmt: skip
    # 8 % of the traffic carries no task type: classification still dominates (92 %).
    for i in range(0, 1240, 12)[:99]:
        events[i] = dataclasses.replace(events[i], task_type=None)
    await store(pool, events)
    await run(job_context(pool))

    row = await one_open(pool, org)
    target = await downgrade_target(pool, MODEL, 2)
    assert row["recommended_model"] == target == "gpt-6-luna"
    price = await price_now(pool, target)
    current = sum((e.cost_usd for e in events), Decimal(0))
    projected = (
        (1240 * 210 * price.input + 1240 * 100 * price.cached + 1240 * 12 * price.output) / 10**6
    ).quantize(Q, rounding=ROUND_HALF_EVEN)
    assert abs(row["current_cost_usd"] - current) <= Q
    assert abs(row["projected_cost_usd"] - projected) <= Q
    assert abs(row["projected_savings_usd"] - (current - projected)) <= 2 * Q
    assert row["projected_savings_usd"] > 0

    details = row["details"]
    monthly = Decimal(details["monthly_saving_usd"])
    assert monthly == row["projected_savings_usd"]  # the window is 30 days: no scaling
    assert details["coverage"]["scaled_to_30_days"] is False
    assert details["signals"]["requests"] == 1240
    assert details["signals"]["dominant_share"] == pytest.approx(1141 / 1240)
    assert details["prices"]["target"]["input_per_mtok"] == str(price.input)
    assert details["downgrade"] == {"matched_model": MODEL, "target_model": target, "steps": 2}
    assert details["thresholds"]["min_requests"] == 500
    assert bucket_index(details["signals"]["p95_latency_ms"]) == bucket_index(400.0)
    assert row["rationale"] == (
        "92 % of 1,240 requests are classification; prompts average 310 tokens, "
        f"completions 12; error rate 0.0 %: gpt-6-luna can likely do this for ${monthly:,.2f} "
        "a month less"
    )


async def test_499_requests_give_nothing_and_500_give_one(
    pool: asyncpg.Pool, gpt4o: PriceRow
) -> None:
    org = await new_org(pool)
    before_window = [START - timedelta(hours=1)]
    await store(
        pool,
        [
            *traffic(org, 499, task="classification", price=gpt4o, feature="few"),
            # outside the window: not counted
            *traffic(org, 5, task="classification", price=gpt4o, feature="few",
                     hours=before_window),
            *traffic(org, 500, task="classification", price=gpt4o, feature="enough"),
        ],
    )  # fmt: skip
    await run(job_context(pool))
    assert [r["feature"] for r in await rows_of(pool, org)] == ["enough"]


async def test_a_dated_snapshot_gets_its_family_path(pool: asyncpg.Pool, gpt4o: PriceRow) -> None:
    org = await new_org(pool)
    await store(pool, traffic(org, 500, task="extraction", model="gpt-4o-2024-08-06", price=gpt4o))
    await run(job_context(pool))
    row = await one_open(pool, org)
    assert row["current_model"] == "gpt-4o-2024-08-06"
    assert row["recommended_model"] == await downgrade_target(pool, MODEL, 1)
    assert row["details"]["downgrade"]["matched_model"] == MODEL


async def test_no_saving_means_no_recommendation(pool: asyncpg.Pool) -> None:
    # Unpriced traffic recorded no cost: no target can be shown to cost less.
    org = await new_org(pool)
    await store(pool, traffic(org, 600, task="classification", price=None))
    await run(job_context(pool))
    assert await rows_of(pool, org) == []


async def test_a_model_without_a_path_gets_nothing(pool: asyncpg.Pool) -> None:
    org = await new_org(pool)
    nano = await price_now(pool, "gpt-5-nano")  # "no cheaper priced model"
    await store(pool, traffic(org, 600, task="classification", model="gpt-5-nano", price=nano))
    await run(job_context(pool))
    assert await rows_of(pool, org) == []


async def test_a_short_history_is_scaled_to_a_month(pool: asyncpg.Pool, gpt4o: PriceRow) -> None:
    org = await new_org(pool)
    two_days = [END - timedelta(hours=48), END - timedelta(hours=1)]
    await store(pool, traffic(org, 500, task="classification", price=gpt4o, hours=two_days))
    await run(job_context(pool))
    row = await one_open(pool, org)
    coverage = row["details"]["coverage"]
    assert coverage["scaled_to_30_days"] is True
    assert (coverage["hours"], coverage["days"]) == (48, 2)
    monthly = Decimal(row["details"]["monthly_saving_usd"])
    assert monthly == (row["projected_savings_usd"] * 15).quantize(Q)
    assert f"${monthly:,.2f} a month less (projected from 2 days of traffic)" in row["rationale"]


async def test_running_twice_gives_one_row(pool: asyncpg.Pool, gpt4o: PriceRow) -> None:
    org = await new_org(pool)
    await store(pool, traffic(org, 500, task="classification", price=gpt4o))
    first = await run(job_context(pool))
    second = await run(job_context(pool))
    assert first.wrote["opened"] >= 1
    assert second.wrote["opened"] == 0 and second.wrote["updated"] >= 1
    [row] = await rows_of(pool, org)
    assert row["status"] == "open"


async def test_a_dismissed_recommendation_is_not_reopened(
    pool: asyncpg.Pool, gpt4o: PriceRow
) -> None:
    org = await new_org(pool)
    await store(pool, traffic(org, 500, task="classification", price=gpt4o))
    await run(job_context(pool))
    row = await one_open(pool, org)
    await pool.execute("UPDATE recommendations SET status = 'dismissed' WHERE id = $1", row["id"])
    # More traffic: the numbers would change, the dismissal stands.
    await store(pool, traffic(org, 300, task="classification", price=gpt4o))
    await run(job_context(pool, NOW + timedelta(hours=1)))
    [after] = await rows_of(pool, org)
    assert after["status"] == "dismissed"
    assert (after["request_count"], after["updated_at"]) == (500, row["updated_at"])


async def test_traffic_turning_to_reasoning_retires_it_and_returning_reopens_it(
    pool: asyncpg.Pool, gpt4o: PriceRow
) -> None:
    org = await new_org(pool)
    await store(pool, traffic(org, 500, task="classification", price=gpt4o))
    await run(job_context(pool))
    opened = await one_open(pool, org)

    await store(pool, traffic(org, 1000, task="reasoning", price=gpt4o))
    later = NOW + timedelta(minutes=30)
    await run(job_context(pool, later))
    [retired] = await rows_of(pool, org)
    assert (retired["id"], retired["status"], retired["updated_at"]) == (
        opened["id"],
        "retired",
        later,
    )

    await store(pool, traffic(org, 3000, task="classification", price=gpt4o))
    await run(job_context(pool, later))
    [reopened] = await rows_of(pool, org)
    assert (reopened["id"], reopened["status"], reopened["request_count"]) == (
        opened["id"],
        "open",
        4500,
    )


async def test_a_new_target_retires_the_old_one(pool: asyncpg.Pool, gpt4o: PriceRow) -> None:
    org = await new_org(pool)
    await store(pool, traffic(org, 500, task="extraction", prompt=3000, price=gpt4o))
    await run(job_context(pool))
    one_step = await one_open(pool, org)
    assert one_step["steps"] == 1

    await store(pool, traffic(org, 1000, task="classification", price=gpt4o))
    await run(job_context(pool))
    rows = {r["recommended_model"]: r for r in await rows_of(pool, org)}
    assert rows[one_step["recommended_model"]]["status"] == "retired"
    two_steps = await one_open(pool, org)
    assert (two_steps["steps"], two_steps["recommended_model"]) == (
        2,
        await downgrade_target(pool, MODEL, 2),
    )
