"""Cold-path benchmark: the scheduler's jobs at 100 k, 1 M and 10 M request_logs rows.

Run it from the repository root, with the local Postgres running (or pointed to by
``--postgres``)::

    .venv/bin/python bench/aggregate.py [--rows 100000,1000000,10000000] [--orgs 100] \\
        [--jobs aggregate,anomalies,recommendations]

For each size it creates its own database (``lectr_bench_aggregate_<random>``, migrated,
with day partitions for the whole window) and drops it when the size is done, also on
failure, Ctrl-C or SIGTERM. In it, SQL alone (``INSERT … SELECT FROM generate_series``,
seeded, in chunks of 500 000 with a progress line each) writes ``rows`` synthetic
``request_logs`` rows for ``orgs`` organisations over the last 32 days: three features
per org (60/30/10 of its traffic) out of six, each on one model that ``model_pricing``
prices and ``model_downgrades`` knows (gpt-4o, gpt-4o-mini, claude-sonnet-4-6,
claude-opus-4-6, gemini-2.5-flash), with its own task type (none included) and 15 % of
other or no task; about 4 % errors (429, 503, 400, no status, plus cut streams),
lognormal latencies (to 0.1 ms, so some fall exactly on a histogram bound) and token
counts, streaming with tokeniser-counted and uncounted rows, costs from the stored
prices, and an error spike in the last full hour for every tenth org.

One ``INSERT … SELECT … GROUP BY`` then builds ``request_rollups`` from those rows, as
the consumer would have written them. Before anything is timed the run checks that: 1000
rows (a tenth of them with a latency exactly on a bucket bound) rolled up by the
consumer's own code (``consumers.rollups``) must equal the same SQL restricted to them;
the stored rollups of five whole org-hours (the busiest one included) must equal the
consumer's rollups of their raw rows; and the rollups must count every row. No job reads
``request_logs``, so it is loaded without its indexes and left so, with autovacuum off;
the rollups get their indexes back and a ``VACUUM ANALYZE``, so no autovacuum runs
during the timings.

Each job (``aggregate``, ``anomalies``, ``recommendations``) then runs twice, one after
the other, with the clock fixed at the generation's "now" (half past the current hour):
the first run writes everything, the second is the steady state (summaries replaced,
episodes continued, recommendations upserted). Both are printed; the second is the one
compared. The jobs read rollups only, so their time should follow rollup rows (keys
times hours), not raw rows: the table shows both, and the last lines give the ratio of
the largest size's time to the smallest's per job ("flat" when at most 1.5x).

A job module that does not exist yet is skipped with a line saying so. The 10 M size
needs a few GB of disk and several minutes to generate; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import math
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import uvloop

from consumers.rollups import rollups
from consumers.writer import COLUMNS
from lectr import migrations
from lectr.db import asyncpg_dsn, drop_database, with_database
from lectr.settings import Settings
from scheduler.job import Job, JobContext
from scheduler.settings import SchedulerSettings
from schema import partitions
from schema.events import RequestEvent
from schema.latency import BUCKET_COUNT, LATENCY_BOUNDS_MS

DEFAULT_SIZES = (100_000, 1_000_000, 10_000_000)
JOBS = ("aggregate", "anomalies", "recommendations")
DAYS = 32  # the 30-day window, plus two older days
CHUNK = 500_000  # rows per INSERT (one progress line each)
FLAT = 1.5
SAMPLE_ROWS = 1000
SAMPLE_HOURS = 5

# (feature, provider, model, response model, task type ('' = none), median latency ms,
# mean input tokens, mean output tokens, share streamed). Each org uses three of them.
FEATURES = (
    ("chat", "openai", "gpt-4o", "gpt-4o-2024-08-06", "", 900, 800, 400, 0.6),
    ("classify", "openai", "gpt-4o", "gpt-4o-2024-08-06", "classification", 450, 300, 5, 0.0),
    ("summarise", "anthropic", "claude-sonnet-4-6", "claude-sonnet-4-6", "summarisation",
     1800, 3000, 300, 0.3),
    ("extract", "openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "extraction",
     700, 1500, 200, 0.0),
    ("search", "gemini", "gemini-2.5-flash", "gemini-2.5-flash", "", 400, 500, 150, 0.2),
    ("agent", "anthropic", "claude-opus-4-6", "claude-opus-4-6", "reasoning",
     3500, 5000, 1500, 0.5),
)  # fmt: skip

SETUP_SQL = f"""
CREATE TEMP TABLE bench_orgs (no int PRIMARY KEY, id uuid NOT NULL, key_id uuid NOT NULL);
CREATE TEMP TABLE bench_features (
    no int PRIMARY KEY, feature text, provider text, model text, response_model text,
    task text, median_ms float8, in_mean float8, out_mean float8, stream_share float8,
    in_price numeric, out_price numeric, cached_price numeric);
INSERT INTO bench_features (no, feature, provider, model, response_model, task, median_ms,
                            in_mean, out_mean, stream_share)
VALUES {", ".join(f"({i}, {', '.join(repr(v) for v in f)})" for i, f in enumerate(FEATURES))};
UPDATE bench_features f
SET in_price = p.input_per_mtok, out_price = p.output_per_mtok,
    cached_price = coalesce(p.cached_input_per_mtok, p.input_per_mtok)
FROM (SELECT DISTINCT ON (provider, model) * FROM model_pricing
      ORDER BY provider, model, effective_from DESC) p
WHERE p.provider = f.provider AND p.model = f.model;
"""

ORGS_SQL = """
WITH made AS (
    INSERT INTO organizations (name)
    SELECT 'bench-org-' || n FROM generate_series(0, $1::int - 1) n
    RETURNING id, name
)
INSERT INTO bench_orgs SELECT split_part(name, '-', 3)::int, id, gen_random_uuid() FROM made
"""

# Every random draw is made once per row in the MATERIALIZED CTE (a volatile function
# in a subquery that gets flattened could be evaluated once per use); everything after
# it is a plain function of those draws. OFFSET 0 keeps each step from being flattened
# into the next, which would compute its expressions again at every use.
GENERATE_SQL = """
WITH draw AS MATERIALIZED (
    SELECT g,
           floor(random() * $3::int)::int AS org_no,
           random() AS u_feature,
           1 - random() AS u_time,
           random() AS u_task, random() AS u_stream, random() AS u_status,
           random() AS u_error, random() AS u_ttfb, random() AS u_cached, random() AS u_tokens,
           sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS z_latency,
           sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS z_in,
           sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS z_out
    FROM generate_series($1::bigint, $2::bigint) g
), picked AS (
    SELECT d.*, o.id AS org_id, o.key_id, f.*,
           $4::timestamptz - d.u_time * interval '1 day' * $7::int AS created_at,
           d.org_no % 10 = 0 AS spiking
    FROM draw d
    JOIN bench_orgs o ON o.no = d.org_no
    JOIN bench_features f ON f.no = (d.org_no
        + 2 * CASE WHEN d.u_feature < 0.6 THEN 0 WHEN d.u_feature < 0.9 THEN 1 ELSE 2 END) % 6
    OFFSET 0
), shaped AS (
    SELECT p.*,
           CASE WHEN p.spiking AND p.created_at >= $5 AND p.created_at < $6
                     AND p.u_status < 0.3 THEN 500
                WHEN p.u_status < 0.020 THEN 429
                WHEN p.u_status < 0.030 THEN 503
                WHEN p.u_status < 0.034 THEN 400
                WHEN p.u_status < 0.037 THEN 0
                ELSE 200 END AS status,
           p.u_stream < p.stream_share AS streamed,
           round(p.median_ms * exp(0.6 * p.z_latency) * 10) / 10 AS latency
    FROM picked p
    OFFSET 0
), counted AS (
    SELECT s.*,
           CASE WHEN s.status <> 200 THEN NULL
                WHEN s.streamed AND s.u_tokens < 0.25 THEN 'tokeniser'
                WHEN s.streamed AND s.u_tokens < 0.27 THEN 'uncounted'
                ELSE 'provider' END AS token_source,
           greatest(1, round(s.in_mean * exp(0.5 * s.z_in)))::int AS input_n,
           greatest(1, round(s.out_mean * exp(0.5 * s.z_out)))::int AS output_n
    FROM shaped s
    OFFSET 0
), final AS (
    SELECT c.*,
           CASE WHEN c.token_source = 'provider' AND c.u_cached < 0.3
                THEN floor(c.input_n * c.u_cached)::int ELSE 0 END AS cached_n
    FROM counted c
    OFFSET 0
)
INSERT INTO request_logs (
    id, created_at, completed_at, org_id, api_key_id, provider, requested_model,
    actual_model, response_model, endpoint, streaming, status_code, error_category,
    error_source, latency_ms, ttfb_ms, input_tokens, output_tokens, cached_tokens,
    token_source, cost_usd, feature, task_type, proxy_instance)
SELECT md5('bench' || g)::uuid, created_at, created_at + latency * interval '1 millisecond',
       org_id, key_id, provider, model, model,
       CASE WHEN status = 200 THEN response_model END,
       CASE WHEN provider = 'anthropic' THEN '/v1/messages' ELSE '/v1/chat/completions' END,
       streamed, status,
       CASE status WHEN 429 THEN 'rate_limited' WHEN 500 THEN 'server_error'
                   WHEN 503 THEN 'server_error' WHEN 400 THEN 'bad_request'
                   WHEN 0 THEN 'upstream_timeout'
                   ELSE CASE WHEN streamed AND u_error < 0.01 THEN 'upstream_disconnect' END
       END,
       CASE WHEN status = 0 THEN 'network' WHEN status >= 400 THEN 'provider'
            WHEN streamed AND u_error < 0.01 THEN 'provider' END,
       latency,
       CASE WHEN status = 0 THEN NULL
            WHEN streamed THEN round(latency * (1 + 3 * u_ttfb)) / 10
            ELSE round(latency * 9.5) / 10 END,
       CASE WHEN token_source IN ('provider', 'tokeniser') THEN input_n END,
       CASE WHEN token_source IN ('provider', 'tokeniser') THEN output_n END,
       CASE WHEN token_source = 'provider' THEN cached_n END,
       token_source,
       CASE WHEN token_source = 'uncounted' THEN NULL
            WHEN token_source IS NULL THEN 0
            ELSE round(((input_n - cached_n) * in_price + cached_n * cached_price
                        + output_n * out_price) / 1000000, 8) END,
       feature,
       CASE WHEN u_task < 0.85 THEN nullif(task, '')
            WHEN task = '' THEN 'generation' END,
       'bench-proxy-' || (g % 2)
FROM final
ORDER BY created_at
"""

# bisect_left(LATENCY_BOUNDS_MS, latency) (the bounds below the latency, as
# schema.latency.bucket_index counts them): width_bucket counts the bounds <= its operand,
# so count those >= latency on the negated, reversed bounds and take them away.
_NEGATED_BOUNDS = "ARRAY[" + ", ".join(f"{-b}" for b in reversed(LATENCY_BOUNDS_MS)) + "]::float8[]"
_BUCKET = f"({len(LATENCY_BOUNDS_MS)} - width_bucket(-latency_ms, {_NEGATED_BOUNDS}))"
_ROLLUP_KEYS = """date_trunc('hour', created_at, 'UTC') AS bucket_start, org_id, feature, provider,
       coalesce(nullif(actual_model, ''), nullif(requested_model, ''), '') AS model,
       coalesce(response_model, '') AS response_model, coalesce(task_type, '') AS task_type,
       (status_code / 100)::text || 'xx' AS status_class"""
_ROLLUP_COUNTS = f"""count(*) AS request_count,
       count(*) FILTER (WHERE status_code >= 400 OR status_code = 0
                        OR error_category IS NOT NULL) AS error_count,
       count(*) FILTER (WHERE streaming) AS streaming_count,
       coalesce(sum(input_tokens), 0) AS input_tokens,
       coalesce(sum(output_tokens), 0) AS output_tokens,
       coalesce(sum(cached_tokens), 0) AS cached_tokens,
       coalesce(sum(cost_usd), 0) AS cost_usd,
       count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced_count,
       sum(latency_ms) AS latency_ms_sum, max(latency_ms) AS latency_ms_max,
       coalesce(sum(ttfb_ms), 0) AS ttfb_ms_sum, count(ttfb_ms) AS ttfb_count,
       count(*) FILTER (WHERE input_tokens IS NOT NULL
                        OR output_tokens IS NOT NULL) AS tokens_known_count,
       count(*) FILTER (WHERE token_source = 'tokeniser') AS tokeniser_count,
       ARRAY[{", ".join(f"count(*) FILTER (WHERE bucket = {i})" for i in range(BUCKET_COUNT))}]
           AS latency_histogram"""
ROLLUP_FIELDS = ("request_count", "error_count", "streaming_count", "input_tokens",
                 "output_tokens", "cached_tokens", "cost_usd", "unpriced_count",
                 "latency_ms_sum", "latency_ms_max", "ttfb_ms_sum", "ttfb_count",
                 "tokens_known_count", "tokeniser_count", "latency_histogram")  # fmt: skip
KEY_COLUMNS = ("bucket_start", "org_id", "feature", "provider", "model", "response_model",
               "task_type", "status_class")  # fmt: skip


def rollup_select(where: str = "") -> str:
    """The rollups of the ``request_logs`` rows matching ``where``, as the consumer
    computes them (consumers.rollups), in one GROUP BY."""
    return f"""
SELECT {_ROLLUP_KEYS}, {_ROLLUP_COUNTS}
FROM (SELECT *, {_BUCKET} AS bucket FROM request_logs {where}) r
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8"""


# In key order, as a consumer writing hour after hour leaves them on disk.
BUILD_ROLLUPS_SQL = f"""
INSERT INTO request_rollups ({", ".join(KEY_COLUMNS)}, {", ".join(ROLLUP_FIELDS)})
{rollup_select()}
ORDER BY 1, 2, 3, 4, 5, 6, 7, 8"""


PARTITIONS_SQL = """
SELECT array_agg(child.relname::text) FROM pg_inherits
JOIN pg_class child ON child.oid = pg_inherits.inhrelid
WHERE pg_inherits.inhparent = 'request_logs'::regclass
"""


SAMPLE_SQL = f"""
(SELECT * FROM request_logs WHERE latency_ms = ANY($1::float8[]) LIMIT {SAMPLE_ROWS // 10})
UNION
(SELECT * FROM request_logs ORDER BY random() LIMIT {SAMPLE_ROWS - SAMPLE_ROWS // 10})
"""


class BenchError(RuntimeError):
    """The generated data or a job went wrong: the message says how."""


@dataclass
class Timing:
    first_s: float
    second_s: float
    # What each run wrote (JobResult.summary()).
    summaries: tuple[str, str]


@dataclass
class SizeResult:
    rows: int
    rollup_rows: int
    generate_s: float
    rollups_s: float
    jobs: dict[str, Timing | None] = field(default_factory=dict)


def job_runners(names: list[str]) -> dict[str, Job | None]:
    """``scheduler.<job>.run`` for each job whose module exists (None for a missing one)."""
    found: dict[str, Job | None] = {}
    for name in names:
        try:
            module = importlib.import_module(f"scheduler.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"scheduler.{name}":
                raise
            found[name] = None
        else:
            found[name] = module.run
    return found


# --- generating the data -------------------------------------------------------------------


def create_database(url: str, now: datetime) -> None:
    """Create and migrate the database, with a day partition for every generated day."""
    migrations.migrate(url, today=now.date())
    uvloop.run(_partitions_behind(url, now))


async def _partitions_behind(url: str, now: datetime) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        days = partitions.days_to_cover(now.date(), 0, days_behind=DAYS + 1)
        await partitions.ensure_partitions(conn, days)
    finally:
        await conn.close()


async def drop_indexes(conn: asyncpg.Connection, table: str) -> list[str]:
    """Drop ``table``'s primary key and indexes (rows load several times faster without
    them, and an index built at once is as good); the statements that restore them."""
    pk = await conn.fetchrow(
        "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint "
        "WHERE conrelid = $1::regclass AND contype = 'p'",
        table,
    )
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
        "AND tablename = $1 AND indexname <> $2",
        table,
        pk["conname"],
    )
    await conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {pk['conname']}")
    restore = [f"ALTER TABLE {table} ADD CONSTRAINT {pk['conname']} {pk['definition']}"]
    for index in indexes:
        await conn.execute(f"DROP INDEX {index['indexname']}")
        # A partitioned table's index is listed "ON ONLY" the parent: build it everywhere.
        restore.append(index["indexdef"].replace(" ON ONLY ", " ON "))
    return restore


async def generate(conn: asyncpg.Connection, rows: int, orgs: int, now: datetime) -> float:
    """Write ``rows`` request_logs rows with SQL; returns the seconds it took."""
    started = time.perf_counter()
    await conn.execute("SELECT setseed(0.42)")
    await conn.execute(SETUP_SQL)
    unpriced = await conn.fetchval(
        "SELECT string_agg(model, ', ') FROM bench_features WHERE in_price IS NULL"
    )
    if unpriced:
        raise BenchError(f"model_pricing has no price for {unpriced}")
    await conn.execute(ORGS_SQL, orgs)
    current_hour = now.replace(minute=0, second=0, microsecond=0)
    done = 0
    while done < rows:
        upto = min(rows, done + CHUNK)
        await conn.execute(
            GENERATE_SQL,
            done + 1,
            upto,
            orgs,
            now,
            current_hour - timedelta(hours=1),
            current_hour,
            DAYS,
        )
        done = upto
        print(
            f"  generated {done:>12,} / {rows:,} rows  ({time.perf_counter() - started:6.1f} s)",
            flush=True,
        )
    return time.perf_counter() - started


async def build_rollups(conn: asyncpg.Connection) -> tuple[int, float]:
    """Rollups of every row with one INSERT … SELECT … GROUP BY: (rollup rows, seconds)."""
    started = time.perf_counter()
    status = await conn.execute(BUILD_ROLLUPS_SQL)
    elapsed = time.perf_counter() - started
    return int(status.split()[-1]), elapsed


async def load(conn: asyncpg.Connection, rows: int, orgs: int, now: datetime) -> SizeResult:
    """Generate the rows and build their rollups.

    No job reads ``request_logs``, so it is loaded without its indexes and left so, with
    autovacuum off on its partitions (it would otherwise run during the timings); the
    rollups, which the jobs do read, get their indexes back and a ``VACUUM ANALYZE``.
    """
    await conn.execute(
        "SET synchronous_commit = off; SET work_mem = '256MB'; SET jit = off; "
        "SET maintenance_work_mem = '512MB'"
    )
    await drop_indexes(conn, "request_logs")
    for name in await conn.fetchval(PARTITIONS_SQL):
        await conn.execute(f"ALTER TABLE {name} SET (autovacuum_enabled = false)")
    restore = await drop_indexes(conn, "request_rollups")
    generate_s = await generate(conn, rows, orgs, now)
    rollup_rows, rollups_s = await build_rollups(conn)
    print(f"  built {rollup_rows:,} rollup rows with one GROUP BY ({rollups_s:.1f} s)", flush=True)
    started = time.perf_counter()
    for statement in restore:
        await conn.execute(statement)
    await conn.execute("VACUUM ANALYZE request_rollups")
    print(
        f"  indexed, vacuumed and analysed the rollups ({time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    return SizeResult(rows, rollup_rows, generate_s, rollups_s)


# --- checking the rollups against the consumer's code -----------------------------------------


def _event(row: asyncpg.Record) -> RequestEvent:
    return RequestEvent(**{c: row[c] for c in COLUMNS})


def _as_tuple(values: dict[str, object]) -> tuple[object, ...]:
    return tuple(values[c] for c in ROLLUP_FIELDS)


def _python_rollups(rows: list[asyncpg.Record]) -> dict[tuple, dict[str, object]]:
    out: dict[tuple, dict[str, object]] = {}
    for rollup in rollups(_event(r) for r in rows):
        out[rollup.key] = {c: getattr(rollup, c) for c in ROLLUP_FIELDS}
    return out


def _sql_rollups(rows: list[asyncpg.Record]) -> dict[tuple, dict[str, object]]:
    return {
        (r["bucket_start"], str(r["org_id"]), *(r[c] for c in KEY_COLUMNS[2:])): {
            c: r[c] for c in ROLLUP_FIELDS
        }
        for r in rows
    }


def _same(expected: dict[str, object], got: dict[str, object]) -> list[str]:
    """The fields that differ (floats: sums in another order may differ in the last bits)."""
    wrong = []
    for name in ROLLUP_FIELDS:
        want, have = expected[name], got[name]
        if isinstance(want, float):
            equal = math.isclose(want, float(have), rel_tol=1e-9, abs_tol=1e-6)
        elif isinstance(want, Decimal):
            equal = want == Decimal(have)
        else:
            equal = list(want) == list(have) if name == "latency_histogram" else want == have
        if not equal:
            wrong.append(f"{name}: consumer {want!r}, SQL {have!r}")
    return wrong


def _compare(what: str, expected: dict, got: dict) -> None:
    if expected.keys() != got.keys():
        missing, extra = expected.keys() - got.keys(), got.keys() - expected.keys()
        raise BenchError(
            f"{what}: keys differ; only the consumer's: {sorted(missing)[:3]}, "
            f"only SQL's: {sorted(extra)[:3]}"
        )
    for key, values in expected.items():
        wrong = _same(values, got[key])
        if wrong:
            raise BenchError(f"{what}: rollup {key} differs: {'; '.join(wrong)}")


async def verify(conn: asyncpg.Connection, rows: int) -> str:
    """Check the built rollups against consumers.rollups; a line saying what was checked."""
    # Random rows, and rows whose latency is exactly a bucket bound (the edge case).
    sample = await conn.fetch(SAMPLE_SQL, LATENCY_BOUNDS_MS)
    on_bounds = sum(r["latency_ms"] in LATENCY_BOUNDS_MS for r in sample)
    rebuilt = await conn.fetch(
        rollup_select(
            "WHERE (id, created_at) IN (SELECT * FROM unnest($1::uuid[], $2::timestamptz[]))"
        ),
        [r["id"] for r in sample],
        [r["created_at"] for r in sample],
    )
    _compare(f"{len(sample)} sampled rows", _python_rollups(sample), _sql_rollups(rebuilt))
    hours = await conn.fetch(
        f"""(SELECT org_id, bucket_start FROM request_rollups
             GROUP BY 1, 2 ORDER BY sum(request_count) DESC LIMIT 1)
            UNION
            (SELECT org_id, bucket_start FROM request_rollups ORDER BY random()
             LIMIT {SAMPLE_HOURS - 1})"""
    )
    raw_in_hours = 0
    for hour in hours:
        raw = await conn.fetch(
            "SELECT * FROM request_logs WHERE org_id = $1 AND created_at >= $2 "
            "AND created_at < $2 + interval '1 hour'",
            hour["org_id"],
            hour["bucket_start"],
        )
        stored = await conn.fetch(
            "SELECT * FROM request_rollups WHERE org_id = $1 AND bucket_start = $2",
            hour["org_id"],
            hour["bucket_start"],
        )
        raw_in_hours += len(raw)
        _compare(
            f"org-hour {hour['org_id']} {hour['bucket_start']:%Y-%m-%d %H:00}",
            _python_rollups(raw),
            _sql_rollups(stored),
        )
    counted = await conn.fetchval("SELECT sum(request_count) FROM request_rollups")
    if counted != rows:
        raise BenchError(f"the rollups count {counted:,} requests, request_logs has {rows:,}")
    return (
        f"  rollups match consumers.rollups: {len(sample)} rows ({on_bounds} on a bucket bound), "
        f"{len(hours)} whole org-hours ({raw_in_hours:,} rows); they count all {rows:,} rows"
    )


# --- timing the jobs --------------------------------------------------------------------------


async def time_job(run: Job, ctx: JobContext) -> Timing:
    """Two runs back to back: the first writes everything, the second is the steady state."""
    seconds, summaries = [], []
    for _ in range(2):
        started = time.perf_counter()
        result = await run(ctx)
        seconds.append(time.perf_counter() - started)
        summaries.append(result.summary())
    return Timing(seconds[0], seconds[1], (summaries[0], summaries[1]))


async def measure(url: str, rows: int, args: argparse.Namespace, now: datetime) -> SizeResult:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        result = await load(conn, rows, args.orgs, now)
        print(await verify(conn, rows), flush=True)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=1, max_size=4)
    assert pool is not None
    try:
        ctx = JobContext(
            pool=pool,
            settings=Settings(database_url=url),
            scheduler=SchedulerSettings(),
            clock=lambda: now,
        )
        for name, run in job_runners(args.jobs).items():
            if run is None:
                print(f"  {name}: skipped, scheduler/{name}.py does not exist yet", flush=True)
                result.jobs[name] = None
                continue
            timing = await time_job(run, ctx)
            result.jobs[name] = timing
            print(
                f"  {name}: {timing.first_s:.2f} s ({timing.summaries[0]}),\n"
                f"    then {timing.second_s:.2f} s ({timing.summaries[1]})",
                flush=True,
            )
    finally:
        await pool.close()
    return result


# --- report -----------------------------------------------------------------------------------


def _cell(timing: Timing | None) -> str:
    return "skipped" if timing is None else f"{timing.first_s:6.2f} / {timing.second_s:6.2f}"


def report(results: list[SizeResult]) -> None:
    print()
    print("Seconds per job run (first / second); the jobs read rollups only.")
    header = f"{'rows':>12} {'rollup rows':>12} " + " ".join(f"{j + ' s':>17}" for j in JOBS)
    print(header)
    for r in results:
        print(
            f"{r.rows:>12,} {r.rollup_rows:>12,} "
            + " ".join(f"{_cell(r.jobs.get(j)):>17}" for j in JOBS)
        )
    if len(results) < 2:
        return
    small, large = min(results, key=lambda r: r.rows), max(results, key=lambda r: r.rows)
    print()
    print(
        f"{large.rows:,} rows against {small.rows:,} ({large.rows / small.rows:.0f}x the rows, "
        f"{large.rollup_rows / small.rollup_rows:.1f}x the rollup rows), second runs:"
    )
    for name in JOBS:
        a, b = small.jobs.get(name), large.jobs.get(name)
        if a is None or b is None:
            print(f"  {name:<16} skipped")
            continue
        ratio = b.second_s / a.second_s
        verdict = "flat" if ratio <= FLAT else "NOT flat"
        print(f"  {name:<16} {ratio:5.2f}x  {verdict}")


# --- entry point ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rows",
        default=",".join(str(n) for n in DEFAULT_SIZES),
        help="comma-separated request_logs sizes (default 100000,1000000,10000000)",
    )
    parser.add_argument("--orgs", type=int, default=100, help="organisations (default 100)")
    parser.add_argument(
        "--jobs",
        default=",".join(JOBS),
        help="comma-separated jobs to time (default all three; 'none' only builds and checks)",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "LECTR_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="Postgres server URL (a database is created and dropped per size)",
    )
    args = parser.parse_args(argv)
    try:
        args.rows = sorted({int(n.replace("_", "")) for n in args.rows.split(",") if n.strip()})
    except ValueError:
        parser.error(f"--rows: expected comma-separated integers, got {args.rows!r}")
    if not args.rows or min(args.rows) < 1 or args.orgs < 1:
        parser.error("--rows and --orgs must be positive")
    args.jobs = (
        [] if args.jobs == "none" else [j.strip() for j in args.jobs.split(",") if j.strip()]
    )
    if unknown := set(args.jobs) - set(JOBS):
        parser.error(f"--jobs: unknown {', '.join(sorted(unknown))}; choose from {', '.join(JOBS)}")
    return args


def _drop(url: str) -> None:
    try:
        asyncio.run(drop_database(url))
    except Exception as exc:
        print(f"warning: could not drop the benchmark database: {exc}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    missing = [name for name, job in job_runners(args.jobs).items() if job is None]
    print(
        f"now = {now:%Y-%m-%d %H:%M} UTC; {args.orgs} orgs; {DAYS} days of rows"
        + (f"; not written yet, skipped: {', '.join(missing)}" if missing else "")
    )
    print(
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (other work adds noise)"
    )
    results = []
    for rows in args.rows:
        url = with_database(args.postgres, f"lectr_bench_aggregate_{secrets.token_hex(4)}")
        print(f"\n{rows:,} rows: database {url.rsplit('/', 1)[-1]}", flush=True)
        try:
            create_database(url, now)
            results.append(uvloop.run(measure(url, rows, args, now)))
        finally:
            _drop(url)
    report(results)
    return 0


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # clean up as on Ctrl-C


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(args)
    except BenchError as exc:
        print(f"aggregate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aggregate: interrupted; its database was dropped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
