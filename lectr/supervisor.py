"""``lectr up``: run every process on one machine, restart what crashes, stop in order.

Children start in the order given and stop in reverse: each gets SIGTERM and up to its
own stop timeout (its spec's, else ``stop_timeout_s``) to finish its work (drain a
buffer, ack a batch) before SIGKILL goes to its whole process group.
Children run in their own process group so a terminal's Ctrl-C reaches only the
supervisor, which then stops them in that order.

A child that exits while the supervisor is running is restarted after a delay that
doubles on each quick crash (up to ``max_restart_delay_s``) and resets once the child
has stayed up for ``stable_after_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: tuple[str, ...]
    # The child's environment; None inherits the supervisor's.
    env: Mapping[str, str] | None = None
    # Seconds it gets to stop after SIGTERM; None: the supervisor's stop_timeout_s.
    stop_timeout_s: float | None = None


@dataclass
class _Child:
    spec: ProcessSpec
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    restarts: int = 0
    delay_s: float = field(default=0.0)


def restart_delay(
    previous_s: float, uptime_s: float, *, first_s: float, max_s: float, stable_after_s: float
) -> float:
    """How long to wait before restarting a child that ran for ``uptime_s`` and exited.

    ``previous_s`` is the delay used before its last restart (0 if never restarted).
    """
    if previous_s == 0 or uptime_s >= stable_after_s:
        return first_s
    return min(previous_s * 2, max_s)


class Supervisor:
    """Runs ``specs`` until ``stop`` is set.

    :param specs: processes in start order.
    :param stop_timeout_s: grace period after SIGTERM for a child whose spec sets none.
    :param restart_delay_s: first delay before restarting a crashed child.
    :param max_restart_delay_s: cap on that delay.
    :param stable_after_s: uptime after which a crash counts as the first one again.
    :param stop_together: stop every child at once instead of in reverse order (for
        identical workers, which need no order).
    :param clock: monotonic seconds, replaceable in tests.
    """

    def __init__(
        self,
        specs: Sequence[ProcessSpec],
        *,
        stop_timeout_s: float = 30.0,
        restart_delay_s: float = 1.0,
        max_restart_delay_s: float = 30.0,
        stable_after_s: float = 60.0,
        stop_together: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._children = [_Child(spec) for spec in specs]
        self._stop_timeout_s = stop_timeout_s
        self._restart_delay_s = restart_delay_s
        self._max_restart_delay_s = max_restart_delay_s
        self._stable_after_s = stable_after_s
        self._stop_together = stop_together
        self._clock = clock
        self._stopping = asyncio.Event()

    def restarts(self, name: str) -> int:
        """How many times the named child has been restarted."""
        return next(c.restarts for c in self._children if c.spec.name == name)

    async def run(self, stop: asyncio.Event) -> None:
        """Start every child, keep them running until ``stop`` is set, then stop them."""
        watchers: list[asyncio.Task[None]] = []
        try:
            for child in self._children:
                await self._start(child)
                watchers.append(asyncio.create_task(self._watch(child)))
            await stop.wait()
        finally:
            self._stopping.set()
            if self._stop_together:
                await asyncio.gather(*(self._terminate(c) for c in self._children))
            for child in reversed(self._children):
                await self._terminate(child)
            await asyncio.gather(*watchers, return_exceptions=True)

    async def _start(self, child: _Child) -> None:
        child.process = await asyncio.create_subprocess_exec(
            *child.spec.argv, start_new_session=True, env=child.spec.env
        )
        child.started_at = self._clock()
        log.info("started %s (pid %d)", child.spec.name, child.process.pid)

    async def _watch(self, child: _Child) -> None:
        while not self._stopping.is_set():
            assert child.process is not None
            code = await child.process.wait()
            if self._stopping.is_set():
                return
            uptime = self._clock() - child.started_at
            child.delay_s = restart_delay(
                child.delay_s,
                uptime,
                first_s=self._restart_delay_s,
                max_s=self._max_restart_delay_s,
                stable_after_s=self._stable_after_s,
            )
            log.error(
                "%s exited with code %s after %.1f s; restarting in %.1f s",
                child.spec.name,
                code,
                uptime,
                child.delay_s,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), child.delay_s)
            if self._stopping.is_set():
                return
            await self._start(child)
            child.restarts += 1
            if self._stopping.is_set():  # stopping began while it was starting
                await self._terminate(child)
                return

    async def _terminate(self, child: _Child) -> None:
        process = child.process
        if process is None or process.returncode is not None:
            return
        log.info("stopping %s (pid %d)", child.spec.name, process.pid)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        timeout_s = child.spec.stop_timeout_s or self._stop_timeout_s
        try:
            await asyncio.wait_for(process.wait(), timeout_s)
        except TimeoutError:
            log.warning("%s did not stop within %.0f s; killing it", child.spec.name, timeout_s)
            # The whole process group, so no worker it started outlives it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        log.info("%s stopped with code %s", child.spec.name, process.returncode)
