"""Ticks: each (job, tick) runs once across instances, whatever their clocks; overruns
are not stacked; failures, timeouts and an unreachable database never stop the runner.

Runners are driven tick by tick with injected clocks and small fake jobs, each test
under job names of its own (the session database's ``scheduler_runs`` is shared).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from lectr.db import asyncpg_dsn
from lectr.settings import Settings
from scheduler.job import JobContext, JobResult
from scheduler.runner import STALE_MARGIN_S, Runner, ScheduledJob, tick_start
from scheduler.settings import SchedulerSettings
from tests.support.forwarder import TcpForwarder

T0 = datetime(2031, 3, 4, 5, 6, 0, tzinfo=UTC)
SETTINGS = SchedulerSettings(job_timeout_s=30)


class VirtualTime:
    """One virtual "now" that several instances read with their own clock skew."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def clock(self, skew_s: float = 0.0) -> Callable[[], datetime]:
        return lambda: self.now + timedelta(seconds=skew_s)


class Calls:
    """Fake jobs that record (job, tick) of each call, as the job itself sees it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, datetime]] = []

    def job(
        self,
        interval_s: float,
        body: Callable[[JobContext], Awaitable[None]] | None = None,
    ) -> ScheduledJob:
        name = f"t-{uuid.uuid4().hex[:12]}"

        async def run(ctx: JobContext) -> JobResult:
            self.calls.append((name, tick_start(ctx.now(), interval_s)))
            await (body(ctx) if body else asyncio.sleep(0.005))
            return JobResult(wrote={"calls": len(self.calls)})

        return ScheduledJob(name, run, interval_s)


def runner(
    pool: asyncpg.Pool,
    jobs: list[ScheduledJob],
    clock: Callable[[], datetime],
    *,
    instance: str = "test:1",
    settings: SchedulerSettings = SETTINGS,
) -> Runner:
    return Runner(pool, Settings(), settings, jobs, clock=clock, instance=instance)


def sample(runner: Runner, metric: str, **labels: str) -> float | None:
    return runner.metrics.registry.get_sample_value(metric, labels)


async def runs(pool: asyncpg.Pool, name: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT tick_start, instance, status, summary FROM scheduler_runs "
        "WHERE job = $1 ORDER BY tick_start",
        name,
    )


def test_ticks_are_aligned_on_the_epoch() -> None:
    at = datetime(2031, 3, 4, 5, 6, 59, 999_000, tzinfo=UTC)
    assert tick_start(at, 60) == datetime(2031, 3, 4, 5, 6, tzinfo=UTC)
    assert tick_start(at, 300) == datetime(2031, 3, 4, 5, 5, tzinfo=UTC)
    assert tick_start(at, 86_400) == datetime(2031, 3, 4, tzinfo=UTC)
    assert tick_start(at, 0.5) == datetime(2031, 3, 4, 5, 6, 59, 500_000, tzinfo=UTC)


async def test_two_instances_with_skewed_clocks_run_each_tick_exactly_once(
    pool: asyncpg.Pool,
) -> None:
    time = VirtualTime(T0)
    calls = Calls()
    jobs = [calls.job(5), calls.job(20)]
    # Clocks 3 s apart; the second instance starts 13 s after the first.
    first = runner(pool, jobs, time.clock(-2), instance="first:1")
    second = runner(pool, jobs, time.clock(+1), instance="second:2")
    for second_ in range(90):
        instances = [first] if second_ < 13 else [first, second]
        await asyncio.gather(*(r.run_tick(job.name) for r in instances for job in jobs))
        time.advance(1)

    counts = Counter(calls.calls)
    assert set(counts.values()) == {1}
    for job in jobs:
        ticks = [tick for name, tick in calls.calls if name == job.name]
        # Every tick from the first to the last, in order: none skipped, none older
        # after a newer one.
        step = timedelta(seconds=job.interval_s)
        assert ticks == [ticks[0] + i * step for i in range(len(ticks))]
        assert len(ticks) >= 90 // job.interval_s
        rows = await runs(pool, job.name)
        assert [row["tick_start"] for row in rows] == ticks
        assert {row["status"] for row in rows} == {"ok"}
        assert {row["instance"] for row in rows} == {"first:1", "second:2"}
        skipped = sum(
            sample(r, "lectr_scheduler_ticks_skipped_total", job=job.name, reason="claimed") or 0
            for r in (first, second)
        )
        assert skipped > 0


async def test_an_instance_whose_clock_is_behind_never_runs_an_older_tick(
    pool: asyncpg.Pool,
) -> None:
    time = VirtualTime(T0)
    calls = Calls()
    job = calls.job(60)
    ahead = runner(pool, [job], time.clock(+10))
    behind = runner(pool, [job], time.clock(-50))
    time.advance(55)  # ahead is in the next minute's tick; behind still in this one's

    assert (await ahead.run_tick(job.name)).status == "ok"
    outcome = await behind.run_tick(job.name)

    assert outcome.status == "claimed"
    assert outcome.tick_start == T0
    assert calls.calls == [(job.name, T0 + timedelta(minutes=1))]
    assert sample(behind, "lectr_scheduler_ticks_skipped_total", job=job.name,
                  reason="claimed") == 1  # fmt: skip


async def test_a_run_still_going_in_another_instance_is_not_stacked(pool: asyncpg.Pool) -> None:
    time = VirtualTime(T0)
    calls = Calls()
    started, release = asyncio.Event(), asyncio.Event()

    async def overruns(ctx: JobContext) -> None:
        started.set()
        await release.wait()

    job = calls.job(10, overruns)
    one = runner(pool, [job], time.clock(), instance="one:1")
    other = runner(pool, [job], time.clock(), instance="other:2")

    overrunning = asyncio.create_task(one.run_tick(job.name))
    await asyncio.wait_for(started.wait(), 5)
    time.advance(10)  # the next tick, while the first run goes on
    assert (await other.run_tick(job.name)).status == "running"
    assert (await one.run_tick(job.name)).status == "running"  # nor in its own instance
    assert len(calls.calls) == 1

    release.set()
    assert (await overrunning).status == "ok"
    assert (await other.run_tick(job.name)).status == "ok"
    assert [row["instance"] for row in await runs(pool, job.name)] == ["one:1", "other:2"]
    assert sample(other, "lectr_scheduler_ticks_skipped_total", job=job.name,
                  reason="running") == 1  # fmt: skip


async def test_a_crashed_instances_running_row_blocks_only_until_it_is_stale(
    pool: asyncpg.Pool,
) -> None:
    time = VirtualTime(T0)
    calls = Calls()
    job = calls.job(60)
    # A run that an instance started and never finished (it was killed).
    await pool.execute(
        "INSERT INTO scheduler_runs (job, tick_start, instance, started_at, status) "
        "VALUES ($1, $2, 'crashed:9', $2, 'running')",
        job.name,
        T0,
    )
    instance = runner(pool, [job], time.clock())
    stale_after_s = SETTINGS.job_timeout_s + STALE_MARGIN_S

    time.advance(stale_after_s - 1)
    assert (await instance.run_tick(job.name)).status == "running"
    time.advance(2)
    assert (await instance.run_tick(job.name)).status == "ok"
    assert len(calls.calls) == 1


async def test_a_failing_run_is_logged_counted_recorded_and_the_next_tick_runs(
    pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    time = VirtualTime(T0)
    calls = Calls()

    async def fails_once(ctx: JobContext) -> None:
        if len(calls.calls) == 1:
            raise ValueError("upstream table is locked\nDETAIL: more")

    job = calls.job(60, fails_once)
    instance = runner(pool, [job], time.clock())
    caplog.set_level(logging.INFO, logger="scheduler.runner")

    failed = await instance.run_tick(job.name)
    time.advance(60)
    succeeded = await instance.run_tick(job.name)

    assert (failed.status, succeeded.status) == ("failed", "ok")
    rows = await runs(pool, job.name)
    assert [(row["status"], row["summary"]) for row in rows] == [
        ("failed", "ValueError: upstream table is locked"),
        ("ok", "calls=2"),
    ]
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.getMessage().startswith(f"{job.name} tick 2031-03-04T05:06:00Z: failed in ")
    assert error.exc_info is not None and error.exc_info[0] is ValueError  # the traceback
    (ok,) = [r for r in caplog.records if r.levelno == logging.INFO]
    assert re.fullmatch(rf"{job.name} tick 2031-03-04T05:07:00Z: ok in \d+\.\d\d s: calls=2",
                        ok.getMessage())  # fmt: skip
    assert sample(instance, "lectr_scheduler_runs_total", job=job.name, outcome="failed") == 1
    assert sample(instance, "lectr_scheduler_runs_total", job=job.name, outcome="ok") == 1
    assert sample(instance, "lectr_scheduler_run_duration_seconds_count", job=job.name) == 2
    assert (
        sample(instance, "lectr_scheduler_last_success_timestamp_seconds", job=job.name)
        == (T0 + timedelta(seconds=60)).timestamp()
    )


async def test_a_run_over_the_job_timeout_is_cancelled_and_failed(pool: asyncpg.Pool) -> None:
    time = VirtualTime(T0)
    calls = Calls()
    cancelled = asyncio.Event()

    async def hangs(ctx: JobContext) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    job = calls.job(60, hangs)
    instance = runner(pool, [job], time.clock(), settings=SchedulerSettings(job_timeout_s=0.2))

    outcome = await instance.run_tick(job.name)

    assert outcome.status == "failed"
    assert cancelled.is_set()
    (row,) = await runs(pool, job.name)
    assert row["status"] == "failed"
    assert row["summary"] == "TimeoutError: did not finish within 0.2 s"


async def test_the_database_down_skips_ticks_and_the_next_tick_runs_again(
    database_url: str, postgres_forwarder: TcpForwarder, pool: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    time = VirtualTime(T0)
    calls = Calls()
    job = calls.job(60)
    async with _pool(postgres_forwarder.url_for(database_url)) as through:
        instance = runner(through, [job], time.clock())
        assert (await instance.run_tick(job.name)).status == "ok"

        postgres_forwarder.cut()
        time.advance(60)
        down = await instance.run_tick(job.name)
        postgres_forwarder.restore()
        time.advance(60)
        up = await instance.run_tick(job.name)

    assert (down.status, up.status) == ("database", "ok")
    assert [tick for _, tick in calls.calls] == [T0, T0 + timedelta(minutes=2)]
    assert [row["tick_start"] for row in await runs(pool, job.name)] == [
        T0,
        T0 + timedelta(minutes=2),
    ]
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage().startswith(
        f"{job.name} tick 2031-03-04T05:07:00Z not run: cannot claim it in the database ("
    )
    assert sample(instance, "lectr_scheduler_ticks_skipped_total", job=job.name,
                  reason="database") == 1  # fmt: skip


@contextlib.asynccontextmanager
async def _pool(url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool that opens connections only when asked (as the scheduler's does)."""
    pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=0, max_size=2, timeout=2)
    assert pool is not None
    try:
        yield pool
    finally:
        pool.terminate()
