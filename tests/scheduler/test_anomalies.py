"""The anomalies job against real Postgres: synthetic weeks of traffic, a fixed clock,
and the anomaly rows a user would see.

The clock says NOW (15:07), so the window judged is 14:00-15:00 and its baseline the
168 hours before. Traffic goes in as the consumer's own rollups of synthetic events
(the job reads nothing else). Orgs here have no alert recipients and no members, so no
email is involved.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import pandas as pd

from consumers.rollups import rollups
from consumers.writer import add_rollups
from scheduler import anomalies
from scheduler.anomaly_baselines import judge
from scheduler.anomaly_episodes import History
from scheduler.anomaly_series import OVERALL, hourly_values
from scheduler.job import JobResult
from scheduler.rollups import HOUR, hour_start, load
from schema.events import RequestEvent
from tests.scheduler.conftest import NOW, job_context, new_org, request

WINDOW = hour_start(NOW) - HOUR
BASELINE = [WINDOW - k * HOUR for k in range(168, 0, -1)]
COST = Decimal("0.002")  # per request: about 0.06 USD an hour at 30 requests
USUAL = "gpt-4o-mini-2024-07-18"  # what answers gpt-4o-mini in every baseline here
NEW = "gpt-4o-mini-2025-01-31"


def hour_of(
    org: uuid.UUID,
    hour: datetime,
    rng: random.Random,
    *,
    count: int = 30,
    cost: Decimal = COST,
    latency_ms: float = 400.0,
    errors: int = 0,
    drifted: int = 0,
    jitter: bool = True,
    **changes: object,
) -> list[RequestEvent]:
    """``count`` requests spread over ``hour``: the first ``errors`` fail with a 500,
    the last ``drifted`` are answered by :data:`NEW`; latencies jittered ±25 % (uniform)."""
    events = []
    for i in range(count):
        latency = latency_ms * rng.uniform(0.75, 1.25) if jitter else latency_ms
        fields: dict[str, Any] = {"cost_usd": cost, "latency_ms": latency, **changes}
        if i < errors:
            fields["status_code"] = 500
        if i >= count - drifted:
            fields["response_model"] = NEW
        events.append(request(org, hour + i * HOUR / count, **fields))
    return events


def noisy_hours(
    org: uuid.UUID, rng: random.Random, hours: Iterable[datetime] = BASELINE, **changes: object
) -> list[RequestEvent]:
    """Steady traffic with bounded noise: 26-34 requests an hour, 0 or 1 error, latency
    jittered, cost per request steady (so hourly cost follows the count)."""
    events: list[RequestEvent] = []
    for hour in hours:
        count = 30 + rng.randint(-4, 4)
        events += hour_of(org, hour, rng, count=count, errors=rng.randint(0, 1), **changes)
    return events


async def store_rollups(pool: asyncpg.Pool, events: Iterable[RequestEvent]) -> None:
    """Add the rollups the consumer adds for ``events``, without their request_logs rows
    (the job reads rollups only; skipping raw rows keeps weeks of data fast)."""
    async with pool.acquire() as conn, conn.transaction():
        await add_rollups(conn, rollups(events))


async def rows(pool: asyncpg.Pool, org: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM anomalies WHERE org_id = $1"
        " ORDER BY feature NULLS FIRST, kind, window_start",
        org,
    )


async def found(pool: asyncpg.Pool, org: uuid.UUID) -> set[tuple[str | None, str, str]]:
    return {(r["feature"], r["kind"], r["severity"]) for r in await rows(pool, org)}


def details(row: asyncpg.Record) -> dict[str, Any]:
    return orjson.loads(row["details"])


async def detect_at(pool: asyncpg.Pool, now: datetime, *orgs: uuid.UUID) -> JobResult:
    """Detection for ``orgs`` only (other tests' orgs share the database)."""
    return await anomalies.detect(job_context(pool, now), org_ids=orgs)


async def test_each_kind_is_found_with_its_severity_in_both_scopes(pool: asyncpg.Pool) -> None:
    rng = random.Random(7)
    windows: dict[str, tuple[dict[str, Any], set[tuple[str, str]]]] = {
        # case: (the window's requests, the anomalies expected for chat and overall)
        "cost_warning": ({"cost": Decimal("0.003")}, {("cost", "warning")}),
        "cost_critical": ({"cost": Decimal("0.006")}, {("cost", "critical")}),
        "latency": ({"latency_ms": 1600.0}, {("latency", "critical")}),
        "errors": ({"errors": 9}, {("error_rate", "critical")}),
        "traffic_up": ({"count": 90}, {("traffic", "critical"), ("cost", "critical")}),
        "traffic_dip": ({"count": 17}, {("traffic", "warning")}),
        "traffic_gone": ({"count": 0}, {("traffic", "critical")}),
        # 10 requests: too few to judge their 100 % errors and 5 s latency
        "few_requests": (
            {"count": 10, "errors": 10, "latency_ms": 5000.0},
            {("traffic", "warning")},
        ),
        "drift": ({"drifted": 12}, {("model_drift", "critical")}),
        "drift_warning": ({"drifted": 4}, {("model_drift", "warning")}),
    }
    orgs = {case: await new_org(pool) for case in windows}
    events: list[RequestEvent] = []
    for case, (window, _) in windows.items():
        events += noisy_hours(orgs[case], rng)
        events += hour_of(orgs[case], WINDOW, rng, **window)
    await store_rollups(pool, events)

    result = await anomalies.run(job_context(pool, NOW))

    for case, (_, expected) in windows.items():
        both_scopes = {(f, k, s) for f in (None, "chat") for k, s in expected}
        assert await found(pool, orgs[case]) == both_scopes, case
    assert result.wrote["opened"] >= 2 * sum(len(e) for _, e in windows.values())

    cost = (await rows(pool, orgs["cost_critical"]))[0]
    assert cost["status"] == "open" and cost["notified_at"] is None
    assert (cost["window_start"], cost["window_end"]) == (WINDOW, WINDOW + HOUR)
    assert cost["observed"] == 30 * 0.006
    assert abs(cost["baseline"] - 0.06) < 0.003
    assert cost["baseline_stddev"] == 0.01  # the floor: hourly cost varies by ~0.005
    assert cost["threshold"] == cost["baseline"] + 2 * 0.01
    assert details(cost)["sigma_floor_applied"] is True
    assert details(cost)["baseline_hours"] == 168 and details(cost)["window_requests"] == 30

    drift = next(r for r in await rows(pool, orgs["drift"]) if r["feature"] == "chat")
    assert (drift["provider"], drift["model"]) == ("openai", "gpt-4o-mini")
    assert drift["observed"] == 12 / 30
    assert details(drift)["pairs"] == [
        {"provider": "openai", "model": "gpt-4o-mini", "response_model": NEW, "requests": 12}
    ]

    gone = (await rows(pool, orgs["traffic_gone"]))[0]
    assert gone["observed"] == 0 and gone["threshold"] < gone["baseline"]
    assert details(gone)["direction"] == "down" and details(gone)["z"] < -4
    recent = details(gone)["recent"]
    assert len(recent) == 25
    assert recent[-1] == {"hour": WINDOW.isoformat(), "value": 0.0}
    assert recent[0]["hour"] == (WINDOW - 24 * HOUR).isoformat() and recent[0]["value"] >= 26


async def test_steady_noisy_traffic_raises_nothing(pool: asyncpg.Pool) -> None:
    noisy = [await new_org(pool) for _ in range(3)]
    events: list[RequestEvent] = []
    for seed, org in enumerate(noisy):
        rng = random.Random(seed)
        for feature in ("chat", "search"):
            events += noisy_hours(org, rng, [*BASELINE, WINDOW], feature=feature)
    # A flat baseline (30 requests at 400 ms every hour, no errors) and a window that
    # wobbles: +20 % requests and cost, +10 % latency, one error, one new answering model.
    flat = await new_org(pool)
    rng = random.Random(99)
    for hour in BASELINE:
        events += hour_of(flat, hour, rng, jitter=False)
    events += hour_of(
        flat, WINDOW, rng, count=36, latency_ms=440.0, errors=1, drifted=1, jitter=False
    )
    await store_rollups(pool, events)

    await detect_at(pool, NOW, *noisy, flat)

    for org in [*noisy, flat]:
        assert await rows(pool, org) == []
    # The flat org is spared by the floors alone: its baseline's std is 0 for every kind,
    # and its window is above the mean for every kind.
    async with pool.acquire() as conn:
        frame = await load(conn, BASELINE[0], WINDOW + HOUR, org_ids=[str(flat)])
    values = hourly_values(frame, pd.date_range(BASELINE[0], periods=169, freq=HOUR))
    verdicts = judge(values, History().excluded, sigma=2, min_requests=20)
    verdicts = verdicts[verdicts["feature"] == OVERALL].set_index("kind")
    assert verdicts["judged"].all() and not verdicts["anomalous"].any()
    assert (verdicts["std"] == 0).all() and verdicts["floor_applied"].all()
    assert (verdicts["z"] > 1).all()


async def test_a_rule_rewrite_is_not_drift(pool: asyncpg.Pool) -> None:
    """Every baseline here has gpt-4o-mini answered by its usual version, and some hours
    of gpt-4o answered by gpt-4o-2024-08-06. The window sends gpt-4o-mini's requests to
    gpt-4o (a rule), or to a model the baseline never saw; the control is gpt-4o-mini
    itself answered by gpt-4o-2024-08-06: the same answering model, and drift."""
    rewrite, unseen, control = [await new_org(pool) for _ in range(3)]
    rng = random.Random(3)
    gpt4o = {"actual_model": "gpt-4o", "response_model": "gpt-4o-2024-08-06"}
    events: list[RequestEvent] = []
    for org in (rewrite, unseen, control):
        events += noisy_hours(org, rng)
        events += [e for h in BASELINE[::10] for e in hour_of(org, h, rng, count=5, **gpt4o)]
    events += hour_of(rewrite, WINDOW, rng, **gpt4o)
    events += hour_of(unseen, WINDOW, rng, actual_model="o3", response_model="o3-2025-04-16")
    events += hour_of(control, WINDOW, rng, response_model="gpt-4o-2024-08-06")
    await store_rollups(pool, events)

    await detect_at(pool, NOW, rewrite, unseen, control)

    assert await found(pool, rewrite) == set()
    assert await found(pool, unseen) == set()
    assert await found(pool, control) == {
        (None, "model_drift", "critical"),
        ("chat", "model_drift", "critical"),
    }


async def test_orgs_with_less_than_48_hours_of_data_are_skipped(pool: asyncpg.Pool) -> None:
    young, old_enough = await new_org(pool), await new_org(pool)
    rng = random.Random(4)
    events = noisy_hours(young, rng, BASELINE[-46:]) + noisy_hours(old_enough, rng, BASELINE[-48:])
    for org in (young, old_enough):  # 47 and 49 hours of data, the last a cost spike
        events += hour_of(org, WINDOW, rng, cost=Decimal("0.006"))
    await store_rollups(pool, events)

    result = await detect_at(pool, NOW, young, old_enough)

    assert await found(pool, young) == set()
    assert await found(pool, old_enough) == {
        (None, "cost", "critical"),
        ("chat", "cost", "critical"),
    }
    assert details((await rows(pool, old_enough))[0])["baseline_hours"] == 168  # zeros count
    assert result.wrote["orgs_judged"] == 1 and result.wrote["orgs_skipped"] == 1
    assert result.notes == ["building baseline for 1 org, the first judged in about 1 h"]


async def spiked_org(pool: asyncpg.Pool, seed: int) -> uuid.UUID:
    """An org with a noisy week and a critical cost spike (3x) in the window."""
    org = await new_org(pool)
    rng = random.Random(seed)
    await store_rollups(
        pool, noisy_hours(org, rng) + hour_of(org, WINDOW, rng, cost=Decimal("0.006"))
    )
    return org


async def test_a_continuing_episode_updates_its_one_row(pool: asyncpg.Pool) -> None:
    org = await spiked_org(pool, 5)
    await detect_at(pool, NOW, org)
    notified = NOW + timedelta(minutes=1)  # as if the alert went out
    await pool.execute("UPDATE anomalies SET notified_at = $2 WHERE org_id = $1", org, notified)
    first = await rows(pool, org)
    # The next hour is still expensive, less so (a warning on its own).
    next_hour = WINDOW + HOUR
    await store_rollups(pool, hour_of(org, next_hour, random.Random(6), cost=Decimal("0.003")))

    await detect_at(pool, NOW + HOUR, org)

    later = await rows(pool, org)
    assert [r["id"] for r in later] == [r["id"] for r in first]
    for row in later:
        assert row["status"] == "open" and row["kind"] == "cost"
        assert (row["window_start"], row["window_end"]) == (WINDOW, next_hour + HOUR)
        assert row["observed"] == 30 * 0.003
        assert row["severity"] == "critical"  # the worst of the episode
        assert row["notified_at"] == notified
        assert details(row)["recent"][-2:] == [
            {"hour": WINDOW.isoformat(), "value": 30 * 0.006},
            {"hour": next_hour.isoformat(), "value": 30 * 0.003},
        ]


async def test_an_episode_resolves_when_the_window_is_back_in_range(pool: asyncpg.Pool) -> None:
    org = await spiked_org(pool, 8)
    await detect_at(pool, NOW, org)
    next_hour = WINDOW + HOUR
    await store_rollups(pool, hour_of(org, next_hour, random.Random(9)))

    await detect_at(pool, NOW + HOUR, org)
    await detect_at(pool, NOW + HOUR + timedelta(minutes=5), org)

    resolved = await rows(pool, org)
    assert [(r["feature"], r["status"]) for r in resolved] == [
        (None, "resolved"),
        ("chat", "resolved"),
    ]
    for row in resolved:
        assert row["resolved_at"] == NOW + HOUR
        assert row["window_end"] == WINDOW + HOUR
        assert details(row)["resolved_window_start"] == next_hour.isoformat()


async def test_reruns_within_the_hour_open_nothing_new(pool: asyncpg.Pool) -> None:
    org = await spiked_org(pool, 10)
    await detect_at(pool, NOW, org)
    first = await rows(pool, org)
    assert len(first) == 2

    await detect_at(pool, NOW + timedelta(minutes=5), org)
    assert await rows(pool, org) == first

    # Dismissed by a user: the same window, judged again, does not reopen it ...
    await pool.execute("UPDATE anomalies SET status = 'dismissed' WHERE org_id = $1", org)
    await detect_at(pool, NOW + timedelta(minutes=10), org)
    assert [r["status"] for r in await rows(pool, org)] == ["dismissed", "dismissed"]

    # ... and while the spike goes on, the dismissed episode grows instead of a new one.
    await store_rollups(pool, hour_of(org, WINDOW + HOUR, random.Random(11), cost=Decimal("0.006")))
    await detect_at(pool, NOW + HOUR, org)
    later = await rows(pool, org)
    assert [r["id"] for r in later] == [r["id"] for r in first]
    assert [(r["status"], r["window_end"]) for r in later] == [("dismissed", WINDOW + 2 * HOUR)] * 2


async def test_a_dismissed_anomaly_leaves_the_baseline(pool: asyncpg.Pool) -> None:
    """Two orgs with the same week: a 10x cost spike two days ago, then a 3x spike in
    the window. The old spike's anomaly was dismissed (chat only) in one org, resolved in
    the other. Kept in the baseline, the old spike widens sigma enough to hide the new one."""
    dismissed, resolved = await new_org(pool), await new_org(pool)
    past = BASELINE[-50:-47]
    for org, status in ((dismissed, "dismissed"), (resolved, "resolved")):
        rng = random.Random(12)
        events = noisy_hours(org, rng, [h for h in BASELINE if h not in past])
        events += [e for h in past for e in hour_of(org, h, rng, cost=Decimal("0.02"))]
        events += hour_of(org, WINDOW, rng, cost=Decimal("0.006"))
        await store_rollups(pool, events)
        await pool.execute(
            "INSERT INTO anomalies (org_id, feature, kind, severity, status, window_start,"
            " window_end, observed) VALUES ($1, 'chat', 'cost', 'critical', $2, $3, $4, 0.6)",
            org, status, past[0], past[-1] + HOUR,
        )  # fmt: skip

    await detect_at(pool, NOW, dismissed, resolved)

    new = [r for r in await rows(pool, dismissed) if r["window_start"] == WINDOW]
    assert [(r["feature"], r["kind"], r["severity"]) for r in new] == [("chat", "cost", "critical")]
    assert details(new[0])["baseline_hours"] == 165
    assert [r["window_start"] for r in await rows(pool, resolved)] == [past[0]]


async def test_a_spike_in_one_feature_is_named_and_counts_overall(pool: asyncpg.Pool) -> None:
    org = await new_org(pool)
    rng = random.Random(13)
    events = noisy_hours(org, rng, feature="chat") + noisy_hours(org, rng, feature="search")
    events += hour_of(org, WINDOW, rng, feature="chat")
    events += hour_of(org, WINDOW, rng, feature="search", latency_ms=2000.0)
    await store_rollups(pool, events)

    await detect_at(pool, NOW, org)

    assert await found(pool, org) == {
        (None, "latency", "critical"),
        ("search", "latency", "critical"),
    }
