"""``lectr scheduler``: run the scheduled jobs until SIGTERM; ``--run-once JOB`` runs
one job now and exits.

Each job fires on an epoch-aligned interval (``LECTR_SCHEDULER_<JOB>_INTERVAL_S``) and
once at start-up; every firing claims its tick first (see :mod:`scheduler.runner`), so
any number of schedulers can run and each tick still runs once. APScheduler fires the
jobs with ``max_instances=1`` and ``coalesce=True``: a run that outlasts its interval
makes the missed firings one, never a second run beside it.

The process stays up through failing jobs and an unreachable database (no connection is
opened up front: ``min_size=0``). SIGTERM or SIGINT: no new run starts, the running ones
get ``LECTR_SCHEDULER_SHUTDOWN_TIMEOUT_S`` to finish (awaited in the order
recommendations, anomalies, aggregate, partitions) and are then cancelled and recorded
as failed; exit 0. ``/metrics`` and ``/health`` are served on
``LECTR_HOST:LECTR_SCHEDULER_PORT``; a port in use stops start-up with one line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

import prometheus_client
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from lectr.db import close_pool, create_pool
from lectr.settings import Settings
from scheduler import jobs as registry
from scheduler.job import Clock, Job, JobContext, system_clock
from scheduler.metrics import SchedulerMetrics, start_server
from scheduler.runner import Runner, RunReport, ScheduledJob, execute
from scheduler.settings import JOB_NAMES, SchedulerSettings

log = logging.getLogger(__name__)

# Beyond LECTR_SCHEDULER_SHUTDOWN_TIMEOUT_S, to stop after SIGTERM: recording the
# cancelled runs and closing connections.
STOP_MARGIN_S = 15.0
CONNECT_TIMEOUT_S = 5.0
POOL_CLOSE_TIMEOUT_S = 5.0
# The jobs' own connections plus one per claim; the jobs run at most one each.
POOL_MAX_SIZE = 10
# Ticks count from here, so every instance fires at the same instants.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lectr scheduler",
        description="Run the scheduled jobs (aggregate, anomalies, recommendations, "
        "partitions) until SIGTERM.",
    )
    parser.add_argument(
        "--run-once",
        choices=JOB_NAMES,
        metavar="JOB",
        help="run JOB (one of: %(choices)s) once now, without claiming a tick; print one "
        "line saying what it wrote; exit 0 on success, 1 on failure",
    )
    return parser


def run(settings: Settings, argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    scheduler_settings = SchedulerSettings.from_env()
    # The `_created` series say when each counter was made: noise for a scrape.
    prometheus_client.disable_created_metrics()
    # APScheduler logs every firing at INFO; the runner logs each run once itself.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger().level))
    if args.run_once:
        return _event_loop(run_once(settings, scheduler_settings, args.run_once))
    return _event_loop(serve(settings, scheduler_settings))


def _event_loop(main: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:  # not built for this platform
        return asyncio.run(main)
    return uvloop.run(main)


def stop_deadline_s(environ: Mapping[str, str]) -> float:
    """How long a scheduler needs to stop after SIGTERM (``lectr up`` waits that long)."""
    return SchedulerSettings.from_env(environ).shutdown_timeout_s + STOP_MARGIN_S


async def run_once(
    settings: Settings,
    scheduler_settings: SchedulerSettings,
    name: str,
    *,
    clock: Clock = system_clock,
    load: Callable[[str], Job] = registry.load,
) -> int:
    """Run job ``name`` now; print one line (``aggregate: ok in 0.42 s: summaries=300``);
    return 0 when it succeeded, 1 when it failed."""
    try:
        job = load(name)
    except registry.JobUnavailable as exc:
        cause = exc.__cause__ or exc
        report = RunReport(False, 0.0, f"{type(cause).__name__}: {cause}", exc)
    else:
        pool = await create_pool(
            settings.database_url,
            min_size=0,
            max_size=POOL_MAX_SIZE,
            connect_timeout_s=CONNECT_TIMEOUT_S,
        )
        try:
            context = JobContext(pool, settings, scheduler_settings, clock)
            report = await execute(job, context, scheduler_settings.job_timeout_s)
        finally:
            await close_pool(pool, POOL_CLOSE_TIMEOUT_S)
    if report.error is not None:
        log.error("%s failed", name, exc_info=report.error)
    print(report.line(name), flush=True)
    return 0 if report.ok else 1


async def serve(
    settings: Settings,
    scheduler_settings: SchedulerSettings,
    *,
    stop: asyncio.Event | None = None,
    jobs: Mapping[str, Job] | None = None,
    clock: Clock = system_clock,
) -> int:
    """Run the jobs until ``stop`` is set (by SIGTERM or SIGINT when not given).

    ``jobs`` replaces the registry's (tests); their names must be job names, whose
    intervals the settings give. Raises :class:`lectr.errors.CommandError` when the
    metrics port cannot be bound.
    """
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if stop is None else ()
    stop = stop or asyncio.Event()
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        # The port first: a second scheduler on the same port fails before doing anything.
        metrics = SchedulerMetrics(JOB_NAMES if jobs is None else jobs)
        server = await start_server(metrics, settings.host, scheduler_settings.port)
        try:
            loaded = registry.load_all() if jobs is None else dict(jobs)
            await _run_until_stopped(settings, scheduler_settings, loaded, metrics, clock, stop)
        finally:
            await server.cleanup()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    log.info("scheduler stopped")
    return 0


async def _run_until_stopped(
    settings: Settings,
    scheduler_settings: SchedulerSettings,
    jobs: Mapping[str, Job],
    metrics: SchedulerMetrics,
    clock: Clock,
    stop: asyncio.Event,
) -> None:
    pool = await create_pool(
        settings.database_url,
        min_size=0,
        max_size=POOL_MAX_SIZE,
        connect_timeout_s=CONNECT_TIMEOUT_S,
    )
    scheduled = [
        ScheduledJob(name, job, scheduler_settings.interval_s(name)) for name, job in jobs.items()
    ]
    runner = Runner(pool, settings, scheduler_settings, scheduled, metrics=metrics, clock=clock)
    timer = _timer(runner)
    timer.start()
    every = ", ".join(f"{job.name} every {job.interval_s:g} s" for job in scheduled)
    log.info("scheduler %s running %s; /metrics on %s:%d", runner.instance,
             every or "no jobs", settings.host, scheduler_settings.port)  # fmt: skip
    try:
        await stop.wait()
    finally:
        timer.pause()  # not shutdown: that would cancel the running jobs at once
        log.info("stopping: no new runs; running jobs get up to %g s to finish",
                 scheduler_settings.shutdown_timeout_s)  # fmt: skip
        await runner.stop(registry.SHUTDOWN_ORDER, scheduler_settings.shutdown_timeout_s)
        timer.shutdown(wait=False)
        await close_pool(pool, POOL_CLOSE_TIMEOUT_S)


def _timer(runner: Runner) -> AsyncIOScheduler:
    """APScheduler firing ``runner.run_tick`` for each job: now, then on every boundary
    of its interval counted from the epoch."""
    timer = AsyncIOScheduler(timezone=UTC)
    now = datetime.now(UTC)
    for job in runner.jobs:
        timer.add_job(
            runner.run_tick,
            IntervalTrigger(seconds=job.interval_s, start_date=EPOCH, timezone=UTC),
            args=(job.name,),
            id=job.name,
            name=job.name,
            max_instances=1,
            coalesce=True,
            # A late firing still runs (the claim decides which tick it is).
            misfire_grace_time=None,
            next_run_time=now,
        )
    return timer
