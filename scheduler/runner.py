"""One tick of one job: claim the slot, run the job, record what happened.

Ticks are aligned on the Unix epoch: the tick of a job with interval ``I`` at time
``t`` starts at ``floor(t / I) * I`` (UTC), so every instance computes the same slots
whatever its start time. Before running, an instance claims ``(job, tick_start)`` in
``scheduler_runs`` in a transaction holding a Postgres advisory lock for the job. It
claims only when

- no row of the job has ``tick_start >= `` this tick: each tick runs once, and an
  instance whose clock is behind never runs a tick older than one already run; and
- no row of the job is still ``running`` and younger than ``job_timeout_s`` plus
  :data:`STALE_MARGIN_S`: a run that overruns in another instance is not stacked,
  while the row of an instance that crashed mid-run stops blocking after that time.

A run that raises, or is still going after ``job_timeout_s`` (it is cancelled), is
logged with its traceback, counted and recorded as failed; the next tick runs again.
A claim that cannot reach the database is a warning and a skipped tick, never a crash.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from lectr.db import UNREACHABLE_ERRORS
from lectr.settings import Settings
from scheduler.job import Clock, Job, JobContext, JobResult, system_clock
from scheduler.metrics import SchedulerMetrics
from scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)

# How much longer than job_timeout_s another instance's `running` row blocks the job:
# covers that instance's clock being behind and its time to record the outcome.
STALE_MARGIN_S = 60.0
# Waiting for a pooled connection to claim a tick; longer counts as "database".
ACQUIRE_TIMEOUT_S = 10.0
# After a job is cancelled at shutdown, how long recording its outcome may take.
RECORD_TIMEOUT_S = 5.0
SUMMARY_MAX_CHARS = 1000
# Errors that mean the claim could not be made: the server is unreachable, the pool has
# no connection to give, or Postgres refused (not migrated, shutting down, ...).
CLAIM_ERRORS: tuple[type[BaseException], ...] = (
    *UNREACHABLE_ERRORS,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)

_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('lectr.scheduler:' || $1, 0))"
_STATE = """
SELECT EXISTS (SELECT 1 FROM scheduler_runs WHERE job = $1 AND tick_start >= $2) AS claimed,
       EXISTS (SELECT 1 FROM scheduler_runs
               WHERE job = $1 AND status = 'running' AND started_at > $3) AS running
"""
_INSERT = """
INSERT INTO scheduler_runs (job, tick_start, instance, started_at, status)
VALUES ($1, $2, $3, $4, 'running')
"""
_FINISH = """
UPDATE scheduler_runs SET finished_at = $3, status = $4, summary = $5
WHERE job = $1 AND tick_start = $2
"""
_RELEASE = "DELETE FROM scheduler_runs WHERE job = $1 AND tick_start = $2 AND status = 'running'"


def tick_start(now: datetime, interval_s: float) -> datetime:
    """The start of the tick holding ``now``: ``floor(now / interval) * interval`` (UTC)."""
    start = math.floor(now.timestamp() / interval_s) * interval_s
    return datetime.fromtimestamp(start, UTC)


def instance_name() -> str:
    """``hostname:pid``: which scheduler ran a tick."""
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _first_line(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__


@dataclass(frozen=True)
class ScheduledJob:
    """A job as the runner knows it: its name, its ``run`` and its interval."""

    name: str
    run: Job
    interval_s: float


@dataclass(frozen=True)
class RunReport:
    """How one run went: ``summary`` is what it wrote, or the error's class and first line."""

    ok: bool
    duration_s: float
    summary: str
    error: BaseException | None = None

    def outcome(self) -> str:
        """``ok in 0.42 s: summaries=300 orgs=100``."""
        return f"{'ok' if self.ok else 'failed'} in {self.duration_s:.2f} s: {self.summary}"

    def line(self, job: str) -> str:
        """``aggregate: ok in 0.42 s: summaries=300 orgs=100`` (what ``--run-once`` prints)."""
        return f"{job}: {self.outcome()}"


async def execute(
    job: Job,
    ctx: JobContext,
    timeout_s: float,
    *,
    track: Callable[[asyncio.Task[JobResult]], None] | None = None,
) -> RunReport:
    """Run ``job`` once, bounded by ``timeout_s``; never raises for the job's failure.

    The job runs in a task of its own (given to ``track``), so that shutdown can cancel
    it without cancelling the caller, which then still reports the run. Cancelling the
    caller itself cancels the job and propagates.
    """
    started = time.perf_counter()
    task: asyncio.Task[JobResult] = asyncio.ensure_future(job(ctx))
    if track is not None:
        track(task)
    error: BaseException | None = None
    try:
        result = await asyncio.wait_for(task, timeout_s)
        if not isinstance(result, JobResult):
            raise TypeError(f"the job returned {type(result).__name__}, not a JobResult")
    except TimeoutError as exc:
        # Ours when the job was cancelled by wait_for; else the job's own TimeoutError.
        error = TimeoutError(f"did not finish within {timeout_s:g} s") if task.cancelled() else exc
    except asyncio.CancelledError as exc:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        error = exc  # the job's task alone was cancelled: shutdown ran out of time
    except Exception as exc:
        error = exc
    duration_s = time.perf_counter() - started
    if error is not None:
        summary = (
            "CancelledError: cancelled at shutdown"
            if isinstance(error, asyncio.CancelledError)
            else _first_line(error)
        )
        return RunReport(False, duration_s, summary, error)
    return RunReport(True, duration_s, result.summary())


@dataclass(frozen=True)
class TickOutcome:
    """What one call of :meth:`Runner.run_tick` did. ``status``: ``ok`` or ``failed``
    (it ran), ``claimed``, ``running`` or ``database`` (skipped), ``stopped`` (shutting
    down)."""

    job: str
    tick_start: datetime
    status: str
    report: RunReport | None = None


class Runner:
    """Runs ticks of ``jobs`` for one scheduler instance.

    :param pool: connections for claims and for the jobs (the jobs' context holds it).
    :param settings: the shared settings, handed to each job.
    :param scheduler_settings: ``job_timeout_s`` bounds each run; handed to each job.
    :param jobs: the jobs this instance runs.
    :param metrics: where runs and skipped ticks are counted.
    :param clock: the time ticks are computed from and rows stamped with (tests fix it).
    :param instance: recorded with each run; ``hostname:pid`` by default.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        scheduler_settings: SchedulerSettings,
        jobs: Sequence[ScheduledJob],
        *,
        metrics: SchedulerMetrics | None = None,
        clock: Clock = system_clock,
        instance: str | None = None,
    ) -> None:
        self._pool = pool
        self._jobs = {job.name: job for job in jobs}
        self._settings = scheduler_settings
        self._context = JobContext(pool, settings, scheduler_settings, clock)
        self._clock = clock
        self.metrics = metrics or SchedulerMetrics(self._jobs)
        self.instance = instance or instance_name()
        self._closed = False
        self._ticks: dict[str, asyncio.Task[object]] = {}  # run_tick calls in progress
        self._runs: dict[str, asyncio.Task[JobResult]] = {}  # the jobs they run

    @property
    def jobs(self) -> list[ScheduledJob]:
        return list(self._jobs.values())

    async def run_tick(self, name: str) -> TickOutcome:
        """Claim the current tick of job ``name`` and, if claimed, run it and record
        the outcome. Never raises for the job's failure or an unreachable database."""
        job = self._jobs[name]
        tick = tick_start(self._clock(), job.interval_s)
        if self._closed:
            return TickOutcome(name, tick, "stopped")
        if name in self._ticks:  # a run of this job is still going in this instance
            return self._skipped(name, tick, "running")
        current = asyncio.current_task()
        assert current is not None
        self._ticks[name] = current
        try:
            return await self._claim_and_run(job, tick)
        finally:
            del self._ticks[name]
            self._runs.pop(name, None)

    async def _claim_and_run(self, job: ScheduledJob, tick: datetime) -> TickOutcome:
        started_at = self._clock()
        try:
            refused = await self._claim(job.name, tick, started_at)
        except CLAIM_ERRORS as exc:
            log.warning(
                "%s tick %s not run: cannot claim it in the database (%s); next tick tries again",
                job.name, _iso(tick), _first_line(exc),
            )  # fmt: skip
            return self._skipped(job.name, tick, "database")
        if refused is not None:
            log.debug("%s tick %s not run: %s", job.name, _iso(tick), refused)
            return self._skipped(job.name, tick, refused)
        if self._closed:  # stopping began while claiming: leave the tick to others
            await self._release(job.name, tick)
            return TickOutcome(job.name, tick, "stopped")

        def track(task: asyncio.Task[JobResult]) -> None:
            self._runs[job.name] = task

        report = await execute(job.run, self._context, self._settings.job_timeout_s, track=track)
        finished_at = self._clock()
        self.metrics.run_finished(
            job.name, ok=report.ok, duration_s=report.duration_s, at_s=finished_at.timestamp()
        )
        message = f"{job.name} tick {_iso(tick)}: {report.outcome()}"
        if report.ok:
            log.info("%s", message)
        else:
            log.error("%s", message, exc_info=report.error)
        await self._record(job.name, tick, finished_at, report)
        return TickOutcome(job.name, tick, "ok" if report.ok else "failed", report)

    def _skipped(self, name: str, tick: datetime, reason: str) -> TickOutcome:
        self.metrics.tick_skipped(name, reason)
        return TickOutcome(name, tick, reason)

    async def _claim(self, name: str, tick: datetime, now: datetime) -> str | None:
        """Insert the ``running`` row of the tick; return why not (``claimed`` or
        ``running``), or None when claimed."""
        stale_before = now - timedelta(seconds=self._settings.job_timeout_s + STALE_MARGIN_S)
        async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            await conn.execute(_LOCK, name)
            state = await conn.fetchrow(_STATE, name, tick, stale_before)
            if state["claimed"]:
                return "claimed"
            if state["running"]:
                return "running"
            await conn.execute(_INSERT, name, tick, self.instance, now)
        return None

    async def _release(self, name: str, tick: datetime) -> None:
        try:
            await self._pool.execute(_RELEASE, name, tick, timeout=RECORD_TIMEOUT_S)
        except CLAIM_ERRORS as exc:
            log.warning("%s tick %s: could not release its claim (%s)", name, _iso(tick),
                        _first_line(exc))  # fmt: skip

    async def _record(
        self, name: str, tick: datetime, finished_at: datetime, report: RunReport
    ) -> None:
        status = "ok" if report.ok else "failed"
        try:
            await self._pool.execute(
                _FINISH, name, tick, finished_at, status, report.summary[:SUMMARY_MAX_CHARS],
                timeout=RECORD_TIMEOUT_S,
            )  # fmt: skip
        except CLAIM_ERRORS as exc:
            # The row stays `running` until it is stale; the next tick runs all the same.
            log.warning("%s tick %s: could not record the outcome (%s)", name, _iso(tick),
                        _first_line(exc))  # fmt: skip

    async def stop(self, order: Iterable[str], timeout_s: float) -> None:
        """Start no new runs; wait for the running ones in ``order`` (jobs not named
        last), all within ``timeout_s``; cancel those still going, recorded as failed."""
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        names = [*order, *(name for name in self._jobs if name not in order)]
        for name in names:
            tick = self._ticks.get(name)
            if tick is None:
                continue
            remaining_s = max(0.0, deadline - loop.time())
            log.info("waiting up to %.1f s for %s to finish", remaining_s, name)
            done, _ = await asyncio.wait({tick}, timeout=remaining_s)
            if done:
                continue
            log.warning("%s did not finish within the shutdown timeout; cancelling it", name)
            run = self._runs.get(name)
            (run or tick).cancel()  # cancelling only the job lets the tick record it
            await asyncio.wait({tick}, timeout=RECORD_TIMEOUT_S)
