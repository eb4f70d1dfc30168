"""The scheduler's Prometheus metrics, and the small HTTP server for ``/metrics`` and
``/health`` on ``LECTR_HOST:LECTR_SCHEDULER_PORT``.

The metrics live in a registry of their own (not prometheus_client's global one), so
several schedulers in one test process never share counters.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from lectr.errors import CommandError

# Jobs take from milliseconds (aggregate on a small install) to minutes (recommendations).
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
SKIP_REASONS = ("claimed", "running", "database")


class SchedulerMetrics:
    """Counters of one scheduler process; ``jobs`` are shown with zeros from the start."""

    def __init__(self, jobs: Iterable[str]) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter(
            "lectr_scheduler_runs",
            "Job runs, by job and outcome (ok, failed)",
            ("job", "outcome"),
            registry=self.registry,
        )
        self.duration = Histogram(
            "lectr_scheduler_run_duration_seconds",
            "How long each job run took, failed ones included",
            ("job",),
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.last_success = Gauge(
            "lectr_scheduler_last_success_timestamp_seconds",
            "Unix time at which the job last finished successfully in this process",
            ("job",),
            registry=self.registry,
        )
        self.skipped = Counter(
            "lectr_scheduler_ticks_skipped",
            "Ticks this process did not run: claimed (another instance ran the tick), "
            "running (a run of the job is still going), database (could not claim it)",
            ("job", "reason"),
            registry=self.registry,
        )
        for job in jobs:
            for outcome in ("ok", "failed"):
                self.runs.labels(job, outcome)
            for reason in SKIP_REASONS:
                self.skipped.labels(job, reason)
            self.duration.labels(job)

    def run_finished(self, job: str, *, ok: bool, duration_s: float, at_s: float) -> None:
        """Count a finished run; ``at_s`` is the Unix time it finished."""
        self.runs.labels(job, "ok" if ok else "failed").inc()
        self.duration.labels(job).observe(duration_s)
        if ok:
            self.last_success.labels(job).set(at_s)

    def tick_skipped(self, job: str, reason: str) -> None:
        self.skipped.labels(job, reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def create_app(metrics: SchedulerMetrics) -> web.Application:
    async def serve_metrics(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    app.router.add_get("/health", health)
    return app


async def start_server(metrics: SchedulerMetrics, host: str, port: int) -> web.AppRunner:
    """Serve ``/metrics`` and ``/health``; clean up the returned runner to stop.

    Raises :class:`lectr.errors.CommandError` when the port cannot be bound (in use,
    or a bad host), so start-up fails with one line instead of a traceback.
    """
    runner = web.AppRunner(create_app(metrics), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else str(exc)
        raise CommandError(
            f"cannot serve /metrics on {host}:{port} (LECTR_HOST, LECTR_SCHEDULER_PORT): {reason}"
        ) from exc
    return runner
