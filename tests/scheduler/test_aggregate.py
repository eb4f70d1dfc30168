"""The ``aggregate`` job against real Postgres: every summary figure equals what SQL over
the raw ``request_logs`` rows of the same hourly window gives (counts, errors, cost and
tokens exactly; percentiles within 5 % where a group has enough rows to say so), for
every period, breakdown and series point. Orgs without traffic get zeros; the pipeline
figures are per-instance counter deltas that survive restarts; re-running upserts."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from scheduler import aggregate
from scheduler.rollups import HOUR
from schema.events import TOKENISER, RequestEvent
from tests.scheduler.conftest import NOW, job_context, new_org, request, store

H = NOW.replace(minute=0, second=0, microsecond=0)
END = H + HOUR
SECOND = timedelta(seconds=1)
STARTS = {"24h": END - 24 * HOUR, "7d": END - 168 * HOUR, "30d": END - 720 * HOUR}
MODELS = [
    ("openai", "gpt-4o-mini", 700.0),
    ("openai", "gpt-4o", 1400.0),
    ("anthropic", "claude-3-5-haiku-latest", 900.0),
    ("groq", "llama-3.1-8b-instant", 250.0),
]
FEATURES = ["chat", "search", "summarise", "untagged"]
TASKS = [None, "classification", "summarisation", "generation"]
# (bucket start, rows): the first bucket of each window, the bucket just before it, the
# current hour (rows before NOW only), and the next hour, which no period may count.
TRAFFIC = [
    (H - 40 * 24 * HOUR, 40),
    (H - 720 * HOUR, 60),
    (H - 719 * HOUR, 300),
    (H - 400 * HOUR, 250),
    (H - 168 * HOUR, 150),
    (H - 167 * HOUR, 300),
    (H - 100 * HOUR, 250),
    (H - 24 * HOUR, 200),
    (H - 23 * HOUR, 400),
    (H - 5 * HOUR, 150),
    (H - 1 * HOUR, 450),
    (H, 500),
    (H + HOUR, 60),
]
# Below this many raw rows a p95 is sampling noise: compared within 20 % only.
PERCENTILE_MIN_ROWS = 300
SMALL_GROUP_MIN_ROWS = 40

ERROR = "(status_code >= 400 OR status_code = 0 OR error_category IS NOT NULL)"
KEYS = {
    "by_model": "coalesce(nullif(actual_model, ''), nullif(requested_model, ''), 'unknown')",
    "by_feature": "feature",
    "by_provider": "provider",
    "by_task": "coalesce(nullif(task_type, ''), 'untagged')",
}


def _event(org_id: uuid.UUID, at: datetime, rng: random.Random) -> RequestEvent:
    """One request of a varied mix: every error kind, unpriced, tokeniser-counted,
    streamed, rule-rewritten and model-less rows."""
    provider, model, median_ms = rng.choice(MODELS)
    roll = rng.random()
    status, category = 200, None
    if roll < 0.04:
        status = 500
    elif roll < 0.06:
        status, category = 0, "provider_unreachable"
    elif roll < 0.08:
        status = 0
    elif roll < 0.10:
        category = "stream_interrupted"
    elif roll < 0.13:
        status = rng.choice([400, 404, 429])
    streaming = rng.random() < 0.3
    latency = median_ms * rng.lognormvariate(0, 0.6)
    models: dict[str, Any] = {
        "requested_model": model,
        "actual_model": model,
        "response_model": f"{model}-2024",
    }
    if rng.random() < 0.1:  # a rule sent it elsewhere: counted under the model sent for
        models["requested_model"] = "gpt-4o"
    if rng.random() < 0.02:
        models = dict.fromkeys(models)
    return request(
        org_id,
        at,
        provider=provider,
        **models,
        status_code=status,
        error_category=category,
        streaming=streaming,
        latency_ms=latency,
        ttfb_ms=latency * 0.3 if streaming or rng.random() < 0.5 else None,
        input_tokens=rng.randint(10, 4000),
        output_tokens=rng.randint(0, 900),
        cached_tokens=rng.choice([0, 0, 64, 128]),
        token_source=TOKENISER if rng.random() < 0.15 else "provider",
        cost_usd=None if rng.random() < 0.05 else Decimal(rng.randint(1, 3_000_000)) / 10**8,
        feature=rng.choice(FEATURES),
        task_type=rng.choice(TASKS),
    )


def _traffic(org_id: uuid.UUID) -> list[RequestEvent]:
    rng = random.Random(20261120)
    events = []
    for hour, count in TRAFFIC:
        span = (NOW - H) if hour == H else HOUR  # nothing in the future of NOW
        for i in range(count):
            events.append(_event(org_id, hour + span * i / count, rng))
    return events


def _stats_sql(key: str) -> str:
    return f"""
SELECT {key} AS key, count(*) AS requests, count(*) FILTER (WHERE {ERROR}) AS errors,
       coalesce(sum(cost_usd), 0) AS cost, count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced,
       coalesce(sum(input_tokens), 0) AS input_tokens,
       coalesce(sum(output_tokens), 0) AS output_tokens,
       coalesce(sum(cached_tokens), 0) AS cached_tokens,
       avg(latency_ms) AS latency_mean, avg(ttfb_ms) AS ttfb_mean,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95,
       count(*) FILTER (WHERE streaming) AS streaming,
       count(*) FILTER (WHERE token_source = 'tokeniser') AS tokeniser
FROM request_logs WHERE org_id = $1 AND created_at >= $2 AND created_at < $3
GROUP BY 1"""


async def _expected(
    conn: asyncpg.Connection, org_id: uuid.UUID, key: str, start: datetime
) -> dict[Any, asyncpg.Record]:
    rows = await conn.fetch(_stats_sql(key), org_id, start, END)
    return {r["key"]: r for r in rows}


def _assert_percentile(summary_ms: float | None, exact_ms: float, rows: int, where: str) -> None:
    if rows >= PERCENTILE_MIN_ROWS:
        tolerance = 0.05
    elif rows >= SMALL_GROUP_MIN_ROWS:
        tolerance = 0.20
    else:
        return
    assert summary_ms is not None, where
    assert summary_ms == pytest.approx(exact_ms, rel=tolerance), where


def _assert_counts(got: dict[str, Any], want: asyncpg.Record, where: str) -> None:
    assert got["requests"] == want["requests"], where
    assert got["errors"] == want["errors"], where
    assert Decimal(repr(got["cost_usd"])) == want["cost"], where
    _assert_percentile(got["p95_ms"], want["p95"], want["requests"], f"{where} p95")


def _assert_totals(data: dict[str, Any], want: asyncpg.Record, threshold_ms: int) -> None:
    n = want["requests"]
    assert data["requests"] == n
    assert data["errors"] == want["errors"]
    assert data["error_rate"] == pytest.approx(want["errors"] / n, abs=1e-6)
    assert Decimal(repr(data["cost_usd"])) == want["cost"]
    assert data["unpriced_requests"] == want["unpriced"]
    for tokens in ("input_tokens", "output_tokens", "cached_tokens"):
        assert data[tokens] == want[tokens]
    assert data["latency_mean_ms"] == pytest.approx(want["latency_mean"], abs=0.01)
    assert data["ttfb_mean_ms"] == pytest.approx(want["ttfb_mean"], abs=0.01)
    assert data["latency_p50_ms"] == pytest.approx(want["p50"], rel=0.05)
    assert data["latency_p95_ms"] == pytest.approx(want["p95"], rel=0.05)
    assert data["streaming_share"] == pytest.approx(want["streaming"] / n, abs=1e-6)
    assert data["tokeniser_share"] == pytest.approx(want["tokeniser"] / n, abs=1e-6)
    assert data["p95_threshold_ms"] == threshold_ms
    assert data["p95_over_threshold"] is (data["latency_p95_ms"] > threshold_ms)


def _series_key(period: str) -> str:
    unit = "day" if period == "30d" else "hour"
    return f"greatest(date_trunc('{unit}', created_at, 'UTC'), $2)"


async def _summaries(conn: asyncpg.Connection, org_id: uuid.UUID) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch("SELECT * FROM dashboard_summaries WHERE org_id = $1", org_id)
    return {r["period"]: r for r in rows}


async def _data(conn: asyncpg.Connection, org_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    return {p: json.loads(r["data"]) for p, r in (await _summaries(conn, org_id)).items()}


async def test_summaries_equal_sql_over_raw_rows_for_every_period_and_breakdown(
    pool: asyncpg.Pool,
) -> None:
    org = await new_org(pool, p95_latency_threshold_ms=1500)
    quiet = await new_org(pool)
    await store(pool, _traffic(org))

    # An earlier run first: the later one must replace its rows (same key), not fail or
    # leave them stale.
    first = await aggregate.run(job_context(pool, NOW - 2 * HOUR))
    result = await aggregate.run(job_context(pool, NOW))
    assert result.wrote["summaries"] == 3 * result.wrote["orgs"] == first.wrote["summaries"]

    async with pool.acquire() as conn:
        rows = await _summaries(conn, org)
        data = await _data(conn, org)
        assert set(rows) == {"24h", "7d", "30d"}
        for period, start in STARTS.items():
            assert (rows[period]["window_start"], rows[period]["window_end"]) == (start, END)
            assert rows[period]["computed_at"] == NOW
            got = data[period]
            totals = await _expected(conn, org, "'all'", start)
            _assert_totals(got, totals["all"], 1500)
            for name, key in KEYS.items():
                want = await _expected(conn, org, key, start)
                entries = got[name]
                assert [e["key"] for e in entries] == sorted(
                    want, key=lambda k: (-want[k]["requests"], k)
                ), f"{period} {name}"
                for entry in entries:
                    _assert_counts(entry, want[entry["key"]], f"{period} {name} {entry['key']}")
            want = await _expected(conn, org, _series_key(period), start)
            points = got["series"]
            assert len(points) == {"24h": 24, "7d": 168, "30d": 31}[period]
            assert got["series_step"] == ("day" if period == "30d" else "hour")
            for point in points:
                at = datetime.fromisoformat(point["start"])
                where = f"{period} series {point['start']}"
                if at in want:
                    _assert_counts(point, want.pop(at), where)
                else:
                    empty = (point["requests"], point["errors"], point["cost_usd"])
                    assert empty == (0, 0, 0.0) and point["p95_ms"] is None, where
            assert not want, f"{period}: raw rows outside every series point: {list(want)}"

        # The windows really differ, and the rows outside them were stored but not counted.
        assert data["24h"]["requests"] < data["7d"]["requests"] < data["30d"]["requests"]
        stored = await conn.fetchval("SELECT count(*) FROM request_logs WHERE org_id = $1", org)
        assert stored == sum(count for _, count in TRAFFIC) > data["30d"]["requests"]
        assert data["24h"]["p95_over_threshold"] is True
        detection = data["30d"]["anomaly_detection"]
        assert detection == {
            "active": True,
            "data_since": (H - 40 * 24 * HOUR).isoformat(),
            "active_in_hours": 0,
        }

        quiet_rows = await _summaries(conn, quiet)
        quiet_data = await _data(conn, quiet)
    assert set(quiet_rows) == {"24h", "7d", "30d"}
    for period, got in quiet_data.items():
        assert {k: got[k] for k in ("requests", "errors", "error_rate", "cost_usd")} == {
            "requests": 0,
            "errors": 0,
            "error_rate": 0.0,
            "cost_usd": 0.0,
        }
        assert got["latency_p95_ms"] is got["latency_mean_ms"] is got["ttfb_mean_ms"] is None
        assert got["p95_over_threshold"] is False
        assert all(got[name] == [] for name in KEYS)
        assert len(got["series"]) == {"24h": 24, "7d": 168, "30d": 31}[period]
        assert all(p["requests"] == 0 and p["p95_ms"] is None for p in got["series"])
        assert got["anomaly_detection"] == {
            "active": False,
            "data_since": None,
            "active_in_hours": None,
        }


async def test_anomaly_detection_starts_once_the_org_has_48_hours_of_data(
    pool: asyncpg.Pool,
) -> None:
    orgs = {hours: await new_org(pool) for hours in (47, 48, 10)}
    await store(pool, [request(org, H - hours * HOUR) for hours, org in orgs.items()])
    await aggregate.run(job_context(pool, NOW))
    async with pool.acquire() as conn:
        seen = {hours: (await _data(conn, org))["24h"] for hours, org in orgs.items()}
    assert seen[48]["anomaly_detection"]["active"] is True
    assert seen[48]["anomaly_detection"]["active_in_hours"] == 0
    assert seen[47]["anomaly_detection"] == {
        "active": False,
        "data_since": (H - 47 * HOUR).isoformat(),
        "active_in_hours": 1,
    }
    assert seen[10]["anomaly_detection"]["active_in_hours"] == 38
    # A request only 10 hours back is still in the 24h window; 47/48 hours are not.
    assert (seen[10]["requests"], seen[47]["requests"]) == (1, 0)


async def test_a_rollup_with_a_short_histogram_does_not_stop_the_job(pool: asyncpg.Pool) -> None:
    broken, fine = await new_org(pool), await new_org(pool)
    await store(pool, [request(fine, H - HOUR)])
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO request_rollups (bucket_start, org_id, feature, provider, model,"
            " status_class, request_count, latency_histogram)"
            " VALUES ($1, $2, 'chat', 'openai', 'gpt-4o', '2xx', 3, '{3}')",
            H - HOUR,
            broken,
        )
    await aggregate.run(job_context(pool, NOW))
    async with pool.acquire() as conn:
        assert (await _data(conn, broken))["24h"]["requests"] == 3
        assert (await _data(conn, fine))["24h"]["requests"] == 1


async def test_pipeline_counts_drops_per_instance_across_restarts(pool: asyncpg.Pool) -> None:
    # A clock of its own, far from other tests' health rows (the figures are global).
    now = datetime(2033, 3, 10, 12, 30, tzinfo=UTC)
    day = now.replace(minute=0) + HOUR - 24 * HOUR  # the 24h window's start: 03-09 13:00
    a, b = f"proxy-a-{uuid.uuid4().hex[:8]}", f"proxy-b-{uuid.uuid4().hex[:8]}"
    consumer = f"consumer-{uuid.uuid4().hex[:8]}"
    health = [  # (at, component, instance, dropped, published, lag)
        (day - 3 * HOUR, "proxy", a, 5, 1000, None),  # before the 24h window, in 7d
        (day + 1 * HOUR, "proxy", a, 8, 1500, None),  # +3 dropped, +500
        (day + 20 * HOUR, "proxy", a, 2, 100, None),  # restarted: +2, +100
        (day + 23 * HOUR, "proxy", a, 6, 400, None),  # +4, +300
        (day + 25 * HOUR, "proxy", a, 500, 9000, None),  # after the window: not counted
        (day + 7 * HOUR, "proxy", b, 0, 50, None),  # first row ever: counts whole
        (day + 22 * HOUR, "proxy", b, 0, 250, None),  # +0, +200
        (day + 22 * HOUR, "consumer", consumer, None, 7000, 350.0),
        (day + 23 * HOUR, "consumer", consumer, None, 7100, None),  # idle: no lag measured
    ]
    await pool.executemany(
        """INSERT INTO pipeline_health (recorded_at, component, instance, events_dropped,
               events_published, ingest_lag_ms) VALUES ($1, $2, $3, $4, $5, $6)""",
        health,
    )
    org = await new_org(pool)
    await aggregate.run(job_context(pool, now))
    async with pool.acquire() as conn:
        data = await _data(conn, org)
    lag = {"ingest_lag_ms": 350.0, "ingest_lag_at": (day + 22 * HOUR).isoformat()}
    assert data["24h"]["pipeline"] == {
        "events_dropped": 9,
        "events_published": 1150,
        "drop_rate": round(9 / 1159, 6),
        "dropped_by_instance": {a: 9},
        **lag,
    }
    for period in ("7d", "30d"):
        assert data[period]["pipeline"] == {
            "events_dropped": 14,
            "events_published": 2150,
            "drop_rate": round(14 / 2164, 6),
            "dropped_by_instance": {a: 14},
            **lag,
        }


async def test_a_long_breakdown_folds_its_smallest_keys_into_one_entry(pool: asyncpg.Pool) -> None:
    org = await new_org(pool)
    # Feature f00 gets 56 requests, f01 55, ... f55 1: 56 features, the last 6 folded.
    events = [
        request(org, H - HOUR + i * SECOND, feature=f"f{rank:02d}", latency_ms=100.0 + rank)
        for rank in range(56)
        for i in range(56 - rank)
    ]
    await store(pool, events)
    await aggregate.run(job_context(pool, NOW))
    async with pool.acquire() as conn:
        entries = (await _data(conn, org))["24h"]["by_feature"]
    assert [e["key"] for e in entries] == [f"f{rank:02d}" for rank in range(50)] + [None]
    assert [e["requests"] for e in entries[:50]] == list(range(56, 6, -1))
    assert entries[-1]["folded_keys"] == 6
    assert entries[-1]["requests"] == 6 + 5 + 4 + 3 + 2 + 1
    assert sum(e["requests"] for e in entries) == len(events)
