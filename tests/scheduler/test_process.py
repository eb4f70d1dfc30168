"""``lectr scheduler`` as a process: several at once run each tick once, /metrics counts
the runs, SIGTERM finishes (then cancels, in order) the running jobs and exits 0,
``--run-once`` prints one line.

These tests use a database of their own (the real jobs process every org, and the job
names are the real ones; the session database is shared), with ``scheduler_runs``
emptied before each test. The in-process shutdown tests inject fake jobs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import signal
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lectr import migrations, processes
from lectr.db import asyncpg_dsn, drop_database, with_database
from lectr.settings import Settings
from scheduler import jobs
from scheduler.job import Job, JobContext, JobResult
from scheduler.main import STOP_MARGIN_S, run, serve, stop_deadline_s
from scheduler.settings import JOB_NAMES, SchedulerSettings
from tests.support.cli import run_lectr
from tests.support.processes import free_port, start_lectr, wait_for_health

EVERY_SECOND = {f"LECTR_SCHEDULER_{job.upper()}_INTERVAL_S": "1" for job in JOB_NAMES}
RAN = re.compile(r" INFO scheduler\.runner (\w+) tick (\S+): (?:ok|failed) in ")


@pytest.fixture(scope="module")
def migrated_url(postgres_server_url: str) -> Iterator[str]:
    """A database of this module's own, migrated to head."""
    url = with_database(postgres_server_url, f"lectr_scratch_{uuid.uuid4().hex[:10]}")
    migrations.migrate(url)
    yield url
    asyncio.run(drop_database(url))


@pytest.fixture
async def url(migrated_url: str) -> str:
    """The module's database with no scheduler runs recorded yet."""
    conn = await asyncpg.connect(asyncpg_dsn(migrated_url))
    try:
        await conn.execute("TRUNCATE scheduler_runs")
    finally:
        await conn.close()
    return migrated_url


@pytest.fixture
async def conn_to() -> AsyncIterator:
    opened: list[asyncpg.Connection] = []

    async def connect(url: str) -> asyncpg.Connection:
        opened.append(await asyncpg.connect(asyncpg_dsn(url)))
        return opened[-1]

    yield connect
    for conn in opened:
        await conn.close()


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def _scrape(port: int) -> dict:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        return _samples(await response.text())


async def _wait_for_rows(conn: asyncpg.Connection, job: str, since: datetime, count: int) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    query = (
        "SELECT count(*) FROM scheduler_runs WHERE job = $1 AND status = 'ok' AND tick_start >= $2"
    )
    while await conn.fetchval(query, job, since) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{job} never ran {count} times"
        await asyncio.sleep(0.2)


async def test_two_schedulers_run_each_tick_once_count_it_and_exit_0_on_sigterm(
    url: str, lectr_env: dict[str, str], conn_to
) -> None:
    env = {**lectr_env, "LECTR_DATABASE_URL": url, **EVERY_SECOND}
    ports = [free_port(), free_port()]
    processes = [start_lectr(["scheduler"], {**env, "LECTR_SCHEDULER_PORT": str(p)}) for p in ports]
    try:
        for port, process in zip(ports, processes, strict=True):
            await wait_for_health(f"http://127.0.0.1:{port}", process, timeout_s=40)
        conn = await conn_to(url)
        await _wait_for_rows(conn, "partitions", datetime.now(UTC), 3)
        scraped = [await _scrape(port) for port in ports]
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        outputs = await asyncio.gather(
            *(asyncio.to_thread(p.communicate, timeout=40) for p in processes)
        )
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
        assert "INFO scheduler.main scheduler stopped" in stderr

    # What each process logged it ran is what the table says it ran, and no tick twice.
    logged = {
        process.pid: [(job, datetime.fromisoformat(tick)) for job, tick in RAN.findall(stderr)]
        for process, (_, stderr) in zip(processes, outputs, strict=True)
    }
    assert set(Counter(run for runs in logged.values() for run in runs).values()) == {1}
    rows = await conn.fetch("SELECT job, tick_start, instance, status FROM scheduler_runs")
    assert "running" not in {row["status"] for row in rows}
    for pid, runs in logged.items():
        mine = {(r["job"], r["tick_start"]) for r in rows if r["instance"].endswith(f":{pid}")}
        assert mine == set(runs)
    assert sum(len(runs) for runs in logged.values()) == len(rows)

    # /metrics counted the runs and the ticks the other instance had claimed.
    def total(name: str, **labels: str) -> float:
        return sum(_value(samples, name, **labels) for samples in scraped)

    assert total("lectr_scheduler_runs_total", job="partitions", outcome="ok") >= 3
    assert total("lectr_scheduler_run_duration_seconds_count", job="partitions") >= 3
    assert total("lectr_scheduler_ticks_skipped_total", job="partitions", reason="claimed") >= 1
    last_success = max(
        _value(s, "lectr_scheduler_last_success_timestamp_seconds", job="partitions")
        for s in scraped
    )
    assert abs(last_success - datetime.now(UTC).timestamp()) < 60


async def test_run_once_prints_what_the_job_wrote_and_claims_no_tick(
    url: str, lectr_env: dict[str, str], conn_to
) -> None:
    env = {**lectr_env, "LECTR_DATABASE_URL": url}

    result = await asyncio.to_thread(run_lectr, "scheduler", "--run-once", "partitions", env=env)

    assert result.returncode == 0, result.stderr
    assert re.fullmatch(
        r"partitions: ok in \d+\.\d\d s: partitions_created=\d+ partitions_dropped=0 "
        r"health_rows_deleted=0 runs_deleted=0\n",
        result.stdout,
    ), result.stdout
    conn = await conn_to(url)
    assert await conn.fetchval("SELECT count(*) FROM scheduler_runs") == 0


async def test_run_once_of_a_failing_job_prints_the_error_and_exits_1(
    lectr_env: dict[str, str],
) -> None:
    # Nothing listens on port 1: the job cannot get a connection.
    env = {**lectr_env, "LECTR_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/lectr"}
    result = await asyncio.to_thread(run_lectr, "scheduler", "--run-once", "partitions", env=env)
    assert result.returncode == 1
    assert re.fullmatch(
        r"partitions: failed in \d+\.\d\d s: ConnectionRefusedError: .+\n", result.stdout
    ), result.stdout
    assert "Traceback" in result.stderr


def test_run_once_of_an_unknown_job_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        run(Settings(), ["--run-once", "nightly"])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "argument --run-once: invalid choice: 'nightly'" in err


async def test_a_metrics_port_in_use_stops_start_up_with_one_line(
    lectr_env: dict[str, str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**lectr_env, "LECTR_SCHEDULER_PORT": str(port)}
        result = await asyncio.to_thread(run_lectr, "scheduler", env=env)
    assert result.returncode == 1
    assert result.stderr == (
        f"lectr: cannot serve /metrics on 127.0.0.1:{port} (LECTR_HOST, LECTR_SCHEDULER_PORT): "
        "address already in use\n"
    )


def _settings(url: str, **changes: object) -> tuple[Settings, SchedulerSettings]:
    return Settings(database_url=url), dataclasses.replace(
        SchedulerSettings(), port=free_port(), **changes
    )


async def test_on_stop_overrunning_jobs_are_cancelled_in_order_and_recorded_as_failed(
    url: str, conn_to
) -> None:
    started = {name: asyncio.Event() for name in JOB_NAMES}
    cancelled: list[str] = []

    def hangs(name: str) -> Job:
        async def run(ctx: JobContext) -> JobResult:
            started[name].set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(name)
                raise
            raise AssertionError("unreachable")

        return run

    settings, scheduler_settings = _settings(url, shutdown_timeout_s=0.3)
    stop = asyncio.Event()
    serving = asyncio.create_task(
        serve(settings, scheduler_settings, stop=stop, jobs={n: hangs(n) for n in JOB_NAMES})
    )
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started.values())), 20)
    stopped_at = asyncio.get_running_loop().time()
    stop.set()

    assert await asyncio.wait_for(serving, 10) == 0
    assert asyncio.get_running_loop().time() - stopped_at < 3
    assert cancelled == ["recommendations", "anomalies", "aggregate", "partitions"]
    conn = await conn_to(url)
    rows = await conn.fetch("SELECT job, status, summary FROM scheduler_runs ORDER BY job")
    assert [tuple(row) for row in rows] == [
        (name, "failed", "CancelledError: cancelled at shutdown") for name in sorted(JOB_NAMES)
    ]


async def test_on_stop_the_running_job_finishes_and_no_new_run_starts(url: str, conn_to) -> None:
    starts: Counter[str] = Counter()
    aggregating = asyncio.Event()

    async def slow_aggregate(ctx: JobContext) -> JobResult:
        starts["aggregate"] += 1
        aggregating.set()
        await asyncio.sleep(0.5)
        return JobResult(wrote={"summaries": 3})

    async def quick_anomalies(ctx: JobContext) -> JobResult:
        starts["anomalies"] += 1
        return JobResult()

    settings, scheduler_settings = _settings(url, anomalies_interval_s=0.1, shutdown_timeout_s=10)
    stop = asyncio.Event()
    fakes = {"aggregate": slow_aggregate, "anomalies": quick_anomalies}
    serving = asyncio.create_task(serve(settings, scheduler_settings, stop=stop, jobs=fakes))
    await asyncio.wait_for(aggregating.wait(), 20)
    await asyncio.sleep(0.3)  # anomalies runs a few ticks meanwhile
    stop.set()
    anomalies_at_stop = starts["anomalies"]

    assert await asyncio.wait_for(serving, 10) == 0
    assert starts == {"aggregate": 1, "anomalies": anomalies_at_stop}
    assert anomalies_at_stop >= 2
    conn = await conn_to(url)
    rows = await conn.fetch("SELECT job, status, summary FROM scheduler_runs ORDER BY tick_start")
    assert [tuple(r) for r in rows if r["job"] == "aggregate"] == [
        ("aggregate", "ok", "summaries=3")
    ]
    assert [r["status"] for r in rows if r["job"] == "anomalies"] == ["ok"] * anomalies_at_stop


def test_a_job_that_cannot_be_loaded_is_logged_and_the_others_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    modules = {
        "aggregate": "scheduler.settings",  # no run()
        "anomalies": "scheduler.no_such_job",
        "partitions": "scheduler.partitions",
    }
    with caplog.at_level(logging.ERROR, logger="scheduler.jobs"):
        loaded = jobs.load_all(modules, modules=modules)
    assert list(loaded) == ["partitions"]
    assert [record.getMessage() for record in caplog.records] == [
        "job aggregate: scheduler.settings has no run(ctx) function; it will not run, the "
        "other jobs will",
        "job anomalies: cannot import scheduler.no_such_job: ModuleNotFoundError: No module "
        "named 'scheduler.no_such_job'; it will not run, the other jobs will",
    ]


def test_lectr_up_gives_the_scheduler_its_shutdown_timeout_and_a_margin() -> None:
    environ = {"LECTR_SCHEDULER_SHUTDOWN_TIMEOUT_S": "5"}
    assert processes.stop_deadline_s("scheduler", environ) == 5 + STOP_MARGIN_S
    assert stop_deadline_s({}) == SchedulerSettings().shutdown_timeout_s + STOP_MARGIN_S
