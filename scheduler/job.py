"""What every scheduled job is given and what it returns.

A job is ``async def run(ctx: JobContext) -> JobResult``. It reads the time only from
``ctx.now()`` (tests inject the clock), uses connections from ``ctx.pool``, and reports
what it wrote in its :class:`JobResult`, which the runner logs and ``--run-once``
prints as one line. A job that raises has failed; the runner logs and counts it and the
next tick tries again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from lectr.settings import Settings
from scheduler.settings import SchedulerSettings

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class JobContext:
    pool: asyncpg.Pool
    settings: Settings
    scheduler: SchedulerSettings
    clock: Clock = system_clock

    def now(self) -> datetime:
        return self.clock()


@dataclass
class JobResult:
    """What a run wrote (``{"summaries": 300}``) and anything worth a word (``notes``:
    "SMTP not configured: 2 alerts not sent")."""

    wrote: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: ``summaries=300 orgs=100; SMTP not configured``."""
        counts = " ".join(f"{name}={count}" for name, count in self.wrote.items()) or "nothing"
        return "; ".join([counts, *self.notes])


Job = Callable[[JobContext], Awaitable[JobResult]]
