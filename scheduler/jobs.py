"""The scheduled jobs: which module runs each, and the order they stop in.

Each job is a module with ``async def run(ctx: JobContext) -> JobResult``. Modules are
imported when the scheduler starts, not when this module is, so a job whose module is
missing or broken costs only that job: the scheduler logs an error naming it and runs
the others.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable

from scheduler.job import Job
from scheduler.settings import JOB_NAMES

log = logging.getLogger(__name__)

MODULES: dict[str, str] = {
    "aggregate": "scheduler.aggregate",
    "anomalies": "scheduler.anomalies",
    "recommendations": "scheduler.recommendations",
    "partitions": "scheduler.partitions",
}
assert tuple(MODULES) == JOB_NAMES

# On SIGTERM the running jobs are awaited (then cancelled) in this order: the jobs
# whose results others read last go first, so the dashboard's summaries, which the
# anomaly detector and users read, are the last to be cut short.
SHUTDOWN_ORDER = ("recommendations", "anomalies", "aggregate", "partitions")
assert sorted(SHUTDOWN_ORDER) == sorted(JOB_NAMES)


class JobUnavailable(Exception):
    """A job's module could not be imported or has no ``run``."""


def load(name: str, modules: dict[str, str] = MODULES) -> Job:
    """The ``run`` function of job ``name``; raises :class:`JobUnavailable`."""
    module_name = modules[name]
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a missing or half-written module: that job only fails
        raise JobUnavailable(
            f"job {name}: cannot import {module_name}: {type(exc).__name__}: {exc}"
        ) from exc
    run = getattr(module, "run", None)
    if not callable(run):
        raise JobUnavailable(f"job {name}: {module_name} has no run(ctx) function")
    return run


def load_all(names: Iterable[str] = JOB_NAMES, modules: dict[str, str] = MODULES) -> dict[str, Job]:
    """The jobs that could be loaded, by name; each one that could not is logged."""
    loaded = {}
    for name in names:
        try:
            loaded[name] = load(name, modules)
        except JobUnavailable as exc:
            log.error("%s; it will not run, the other jobs will", exc)
    return loaded
