"""Database growth per stored request: bytes per ``request_logs`` row, indexes included.

Run it from the repository root, with Postgres and RabbitMQ running locally (or pointed
to by ``--postgres`` / ``--amqp``)::

    .venv/bin/python bench/storage.py [--events 200000] [--orgs 20] [--hours 24]

It creates its own database (``lectr_bench_storage_<random>``, migrated with
:func:`lectr.migrations.migrate`) and broker names (same prefix), and drops both at the
end, also on failure or Ctrl-C. The events are stored the way production stores them:
published into the ingest queue, ``--per-message`` events per message as proxies batch
them, and drained by the real consumer (:class:`consumers.consumer.Consumer`, driven by
``bench/ingest.py``'s ``publish`` and ``consume``), which prices them, inserts them with
its own SQL and keeps ``request_rollups``.

The events are made here rather than by ``ingest.make_events`` (one org, one key, every
request a 200 within a few minutes), which would understate the rollups: this mix has
``--orgs`` organisations with three keys and six features each (each feature with one
task type, or none, and two models it uses 80/20, picked from seven models over four
providers, with the names and dated response models providers send), about 4 % errors
(with their category and source), 30 % streamed, 10 % rewritten by a routing rule,
tokens and cached tokens as providers report them (the tokeniser is not exercised: a
counted row is the same size), random version 4 ids as the proxy makes them, and
``created_at`` spread evenly over the last ``--hours`` hours.

After ``VACUUM ANALYZE`` it reads ``pg_total_relation_size`` of every ``request_logs``
partition that holds rows (heap, TOAST, free-space and visibility maps, indexes) and
prints bytes per row, split heap / indexes, and the growth extrapolated per million
requests and per 30-day month at 1, 10 and 100 requests/s, and what
``LECTR_RETENTION_DAYS`` (the scheduler drops older daily partitions) bounds it to.
``request_rollups`` grow per hour x key (org, feature, provider, model, response
model, task type, status class), not per request: their size is printed too, and per
million requests at this mix, which holds only for as many requests per hour-key as
this run has (``--hours`` and ``--orgs`` move it). Rollups are kept forever.

Every figure comes from this run; GB are 10^9 bytes. A freshly loaded table is as
dense as it gets for its indexes: a random-id primary key settles near the same fill
in production, since its inserts are random there too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ingest.py

from ingest import consume, publish

from consumers.settings import ConsumerSettings
from lectr import migrations
from lectr.broker import BrokerNames, declare_topology, delete_topology
from lectr.db import asyncpg_dsn, drop_database, with_database
from scheduler.settings import SchedulerSettings
from schema.events import RequestEvent

SEED = 20_240_601
GB = 1e9
MONTH_DAYS = 30
RATES = (1, 10, 100)  # requests/s for the extrapolation
RETENTION_DAYS = SchedulerSettings.retention_days  # LECTR_RETENTION_DAYS's default

# (provider, endpoint, model asked for, model the response names, share of requests)
MODELS = (
    ("openai", "/v1/chat/completions", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 30),
    ("openai", "/v1/chat/completions", "gpt-4.1", "gpt-4.1-2025-04-14", 15),
    ("openai", "/v1/chat/completions", "gpt-6.1-terra", "gpt-6.1-terra-2026-09-30", 10),
    ("anthropic", "/v1/messages", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", 20),
    ("anthropic", "/v1/messages", "claude-haiku-4-5", "claude-haiku-4-5-20251001", 10),
    ("gemini", "/v1beta/models/gemini-2.5-flash:generateContent", "gemini-2.5-flash",
     "gemini-2.5-flash", 10),
    ("groq", "/openai/v1/chat/completions", "llama-3.3-70b-versatile",
     "llama-3.3-70b-versatile", 5),
)  # fmt: skip
FEATURES = ("support-ticket-summary", "search-rerank", "invoice-extraction",
            "chat-assistant", "lead-scoring", "untagged")  # fmt: skip
TASKS = (None, None, "classification", "summarisation", "extraction", "generation",
         "reasoning")  # fmt: skip
# (status, error category, error source, share in 1000)
OUTCOMES = ((200, None, None, 960), (429, "rate_limited", "provider", 15),
            (500, "server_error", "provider", 8), (400, "bad_request", "provider", 7),
            (499, "client_disconnect", "client", 5), (504, "timeout", "network", 5))  # fmt: skip


def _uuid(rng: random.Random) -> uuid.UUID:
    """A random (version 4) UUID, as the proxy makes event ids."""
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def make_events(count: int, orgs: int, hours: float, now: datetime) -> list[RequestEvent]:
    """``count`` events of the mix described above, oldest first, up to ``now``."""
    rng = random.Random(SEED)
    models = [m[:4] for m in MODELS]
    model_weights = [m[4] for m in MODELS]
    # Per org: its keys, and per feature its task type and the two models it uses.
    tenants = [
        (
            _uuid(rng),
            [_uuid(rng) for _ in range(3)],
            [
                (feature, rng.choice(TASKS), rng.choices(models, model_weights, k=2))
                for feature in FEATURES
            ],
        )
        for _ in range(orgs)
    ]
    rules = {org: _uuid(rng) for org, _, _ in tenants}
    instances = [f"lectr-proxy-6f9c8d7b54-{rng.randbytes(3).hex()[:5]}-1" for _ in range(4)]
    outcomes = [o[:3] for o in OUTCOMES]
    outcome_weights = [o[3] for o in OUTCOMES]
    start = now - timedelta(hours=hours)
    step = timedelta(hours=hours) / count
    events = []
    for i in range(count):
        org, keys, features = tenants[rng.randrange(orgs)]
        feature, task, (main, other) = features[rng.randrange(len(features))]
        provider, endpoint, model, response_model = main if rng.random() < 0.8 else other
        status, category, source = rng.choices(outcomes, outcome_weights)[0]
        ok = status == 200
        streamed = rng.random() < 0.3
        rule = rng.random() < 0.1
        latency = rng.lognormvariate(6.6, 0.7)  # median about 730 ms
        created = start + step * i
        input_tokens = int(rng.lognormvariate(6.5, 1.0)) + 1 if ok else None
        events.append(
            RequestEvent(
                id=_uuid(rng),
                created_at=created,
                completed_at=created + timedelta(milliseconds=latency),
                org_id=org,
                api_key_id=keys[rng.randrange(3)],
                provider=provider,
                endpoint=endpoint,
                streaming=streamed,
                status_code=status,
                latency_ms=round(latency, 3),
                ttfb_ms=round(latency * rng.uniform(0.1, 0.4) if streamed else latency, 3)
                if ok
                else None,
                proxy_instance=rng.choice(instances),
                requested_model="gpt-4o" if rule and provider == "openai" else model,
                actual_model=model,
                response_model=response_model if ok else None,
                error_category=category,
                error_source=source,
                input_tokens=input_tokens,
                output_tokens=int(rng.lognormvariate(5.3, 0.9)) + 1 if ok else None,
                cached_tokens=(rng.choice((0, 0, 0, input_tokens // 2)) if ok else None)
                if provider in ("openai", "anthropic")
                else None,
                token_source="provider" if ok else None,
                feature=feature,
                task_type=task,
                rule_id=rules[org] if rule and provider == "openai" else None,
            )
        )
    return events


# --- sizes ------------------------------------------------------------------------------------

PARTITIONS_SQL = """
SELECT c.oid, c.relname, c.reltuples::int8 AS rows,
       pg_relation_size(c.oid) AS heap,
       pg_table_size(c.oid) - pg_relation_size(c.oid) AS extra,
       pg_indexes_size(c.oid) AS indexes,
       pg_total_relation_size(c.oid) AS total
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = $1::regclass
ORDER BY c.relname
"""

# Each index of the partitioned table, summed over the partitions in $2.
INDEXES_SQL = """
SELECT x.indexrelid::regclass::text AS name,
       (SELECT coalesce(sum(pg_relation_size(p.indexrelid)), 0)::int8
        FROM pg_index p WHERE p.indrelid = ANY($2::oid[])
          AND p.indexrelid IN (SELECT relid FROM pg_partition_tree(x.indexrelid))) AS bytes
FROM pg_index x WHERE x.indrelid = $1::regclass
ORDER BY 1
"""

TUPLE_SQL = "SELECT avg(pg_column_size(r.*)) FROM request_logs r"

TABLE_SQL = """
SELECT (SELECT count(*) FROM {table}) AS rows,
       pg_relation_size($1::regclass) AS heap,
       pg_table_size($1::regclass) - pg_relation_size($1::regclass) AS extra,
       pg_indexes_size($1::regclass) AS indexes,
       pg_total_relation_size($1::regclass) AS total
"""


@dataclass(frozen=True)
class Size:
    rows: int
    heap: int  # main fork
    extra: int  # TOAST, free-space and visibility maps
    indexes: int
    total: int

    def per_row(self, value: int) -> float:
        return value / self.rows


@dataclass(frozen=True)
class Sizes:
    logs: Size  # partitions holding rows
    log_indexes: dict[str, int]  # index -> bytes over those partitions
    partitions: int  # partitions holding rows
    empty_partitions: int
    empty_bytes: int  # the empty partitions' total (fixed, whatever the traffic)
    tuple_bytes: float  # average pg_column_size of a row (its data, no header)
    rollups: Size
    rollup_keys: int  # distinct (org, feature, …) keys, without the hour


async def measure_sizes(conn: asyncpg.Connection) -> Sizes:
    await conn.execute("VACUUM ANALYZE")
    parts = await conn.fetch(PARTITIONS_SQL, "request_logs")
    counts = {
        p["oid"]: await conn.fetchval(f'SELECT count(*) FROM "{p["relname"]}"') for p in parts
    }
    full = [p for p in parts if counts[p["oid"]]]
    empty = [p for p in parts if not counts[p["oid"]]]
    logs = Size(
        rows=sum(counts.values()),
        heap=sum(p["heap"] for p in full),
        extra=sum(p["extra"] for p in full),
        indexes=sum(p["indexes"] for p in full),
        total=sum(p["total"] for p in full),
    )
    indexes = {
        r["name"]: r["bytes"]
        for r in await conn.fetch(INDEXES_SQL, "request_logs", [p["oid"] for p in full])
    }
    rollup = await conn.fetchrow(TABLE_SQL.format(table="request_rollups"), "request_rollups")
    keys = await conn.fetchval(
        "SELECT count(*) FROM (SELECT DISTINCT org_id, feature, provider, model, "
        "response_model, task_type, status_class FROM request_rollups) k"
    )
    return Sizes(
        logs=logs,
        log_indexes=indexes,
        partitions=len(full),
        empty_partitions=len(empty),
        empty_bytes=sum(p["total"] for p in empty),
        tuple_bytes=float(
            await conn.fetchval("SELECT avg(pg_column_size(r.*)) FROM request_logs r")
        ),
        rollups=Size(**dict(rollup)),
        rollup_keys=int(keys),
    )


# --- the run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    events: int
    seconds: float
    sizes: Sizes


async def store(args: argparse.Namespace, url: str, names: BrokerNames, now: datetime) -> Stored:
    print(f"Making {args.events:,} events ...", flush=True)
    events = make_events(args.events, args.orgs, args.hours, now)
    settings = ConsumerSettings(
        batch_size=args.batch_size, writers=args.writers, health_interval_s=3600
    )
    amqp = await aio_pika.connect(args.amqp)
    pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=1, max_size=args.writers + 2)
    assert pool is not None
    try:
        channel = await amqp.channel()  # the broker names go in run()'s clean-up
        topology = await declare_topology(channel, names, replay_max_age="1h")
        print(f"Publishing them, {args.per_message} per message ...", flush=True)
        await publish(topology, events, args.per_message)
        print("Draining the queue with one consumer ...", flush=True)
        seconds = await consume(amqp, pool, names, settings)
        stored = await pool.fetchval("SELECT count(*) FROM request_logs")
        if stored != len(events):
            raise BenchError(f"the consumer stored {stored:,} of {len(events):,} events")
        print("VACUUM ANALYZE and sizes ...", flush=True)
        async with pool.acquire() as conn:
            sizes = await measure_sizes(conn)
    finally:
        await pool.close()
        await amqp.close()
    return Stored(len(events), seconds, sizes)


class BenchError(RuntimeError):
    pass


# --- the report -------------------------------------------------------------------------------


def _bytes(value: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:,.1f} {unit}"
    return f"{value:,.0f} B"


def report(stored: Stored, args: argparse.Namespace) -> None:
    s, logs, rollups = stored.sizes, stored.sizes.logs, stored.sizes.rollups
    print(
        f"\nLectr storage: {stored.events:,} events stored by one consumer in "
        f"{stored.seconds:.1f} s ({stored.events / stored.seconds:,.0f} events/s); "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"Mix: {args.orgs} orgs x 3 keys x {len(FEATURES)} features, {len(MODELS)} models, "
        f"about 30 % streamed and 4 % errors, spread over the last {args.hours:g} h\n"
    )
    print(
        f"request_logs: {logs.rows:,} rows in {s.partitions} daily partition(s), "
        "after VACUUM ANALYZE"
    )
    print(f"  {'':44}{'bytes':>14}{'per row':>10}")
    lines = [
        ("heap (main fork)", logs.heap),
        ("TOAST, free-space and visibility maps", logs.extra),
        ("indexes", logs.indexes),
        *((f"  {name}", size) for name, size in s.log_indexes.items()),
        ("total (pg_total_relation_size)", logs.total),
    ]
    for label, value in lines:
        print(f"  {label:44}{value:>14,}{logs.per_row(value):>10.1f}")
    print(
        f"  (a row averages {s.tuple_bytes:.0f} B, pg_column_size, its 24 B header "
        "included; the heap adds a 4 B line pointer per row and the pages' unused space)"
    )
    print(
        f"  {s.empty_partitions} empty partitions (days ahead, default) hold "
        f"{_bytes(s.empty_bytes)} in all: fixed, not per request"
    )

    per_million = logs.per_row(logs.total) * 1e6
    heap_million = logs.per_row(logs.heap + logs.extra) * 1e6
    index_million = logs.per_row(logs.indexes) * 1e6
    print(
        f"\nPer million requests: {per_million / GB:.3f} GB "
        f"(heap {heap_million / GB:.3f} GB + indexes {index_million / GB:.3f} GB)"
    )
    print(
        f"  {'req/s':>6}{'per day':>12}{f'per {MONTH_DAYS}-day month':>20}"
        f"{f'kept ({RETENTION_DAYS} days)':>18}"
    )
    for rate in RATES:
        day = logs.per_row(logs.total) * rate * 86_400
        print(
            f"  {rate:>6}{day / GB:>9.2f} GB{day * MONTH_DAYS / GB:>17.1f} GB"
            f"{day * RETENTION_DAYS / GB:>15.1f} GB"
        )
    print(
        f"  request_logs stop growing at LECTR_RETENTION_DAYS (default {RETENTION_DAYS}): "
        "the scheduler drops each daily partition once it is that old"
    )

    hour_keys = rollups.rows
    print(
        f"\nrequest_rollups: {rollups.rows:,} rows ({s.rollup_keys:,} keys over "
        f"{args.hours:g} h; {stored.events / hour_keys:.1f} requests per row), "
        f"{_bytes(rollups.total)} (heap {_bytes(rollups.heap + rollups.extra)}, indexes "
        f"{_bytes(rollups.indexes)}), {rollups.per_row(rollups.total):,.0f} B per row"
    )
    rollup_million = rollups.total / stored.events * 1e6
    rate = stored.events / (args.hours * 3600)
    rollup_month = rollups.total / args.hours * 24 * MONTH_DAYS
    print(
        f"  per million requests at this mix: {rollup_million / GB:.3f} GB "
        f"({rollup_million / per_million:.1%} of request_logs); at this run's "
        f"{rate:.1f} req/s: {rollup_month / GB:.2f} GB per {MONTH_DAYS}-day month"
    )
    print(
        "  they grow per hour x key, not per request: fewer requests per hour-key (slower "
        "traffic, more orgs, features or models) cost more per request, and faster traffic "
        "less; they are not dropped by LECTR_RETENTION_DAYS but kept forever"
    )


# --- entry point ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events to store")
    parser.add_argument("--orgs", type=int, default=20, help="organisations (default 20)")
    parser.add_argument(
        "--hours", type=float, default=24.0, help="hours the events spread over (default 24)"
    )
    parser.add_argument("--per-message", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=ConsumerSettings.batch_size)
    parser.add_argument("--writers", type=int, default=ConsumerSettings.writers)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "LECTR_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="Postgres server URL (a database is created and dropped)",
    )
    parser.add_argument(
        "--amqp",
        default=os.environ.get("LECTR_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    )
    args = parser.parse_args(argv)
    if args.events < 1 or args.orgs < 1 or args.hours <= 0 or args.per_message < 1:
        parser.error("--events, --orgs, --hours and --per-message must be positive")
    return args


def _drop(url: str, amqp: str, names: BrokerNames) -> None:
    try:
        asyncio.run(drop_database(url))
    except Exception as exc:
        print(f"warning: could not drop the benchmark database: {exc}", file=sys.stderr)

    async def delete_names() -> None:
        connection = await aio_pika.connect(amqp, timeout=10)
        async with connection:
            await delete_topology(await connection.channel(), names)

    try:
        asyncio.run(delete_names())
    except Exception as exc:
        print(f"warning: could not delete broker names {names.prefix}.*: {exc}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    tag = f"lectr_bench_storage_{secrets.token_hex(4)}"
    url = with_database(args.postgres, tag)
    names = BrokerNames(prefix=tag)
    now = datetime.now(UTC)
    started = time.perf_counter()
    print(f"Database and broker prefix {tag}", flush=True)
    try:
        # Daily partitions from the first event's day on.
        migrations.migrate(url, today=(now - timedelta(hours=args.hours)).date())
        stored = uvloop.run(store(args, url, names, now))
    finally:
        _drop(url, args.amqp, names)
    report(stored, args)
    print(f"\n({time.perf_counter() - started:.0f} s in all)")
    return 0


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # clean up as on Ctrl-C


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(args)
    except BenchError as exc:
        print(f"storage: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("storage: interrupted; its database and broker names were removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
