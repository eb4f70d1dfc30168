"""Stopping a proxy within its documented grace, and the deadlines derived from it.

On SIGTERM a proxy stops accepting connections, closes idle ones, and lets the requests
in flight (streams too) finish for up to ``LECTR_PROXY_SHUTDOWN_TIMEOUT_S``. Requests
still open then are cancelled: each is recorded with ``error_category = 'shutdown'``.
Then the buffer is published for up to ``LECTR_PROXY_BROKER_WAIT_S``, what is left is
spooled, and connections close. Every step is bounded, so :func:`process_deadline_s`
is the longest a proxy process takes to exit, and a supervisor (``--workers``, ``lectr
up``) derives its own deadline from it with a margin.

aiohttp's own graceful shutdown waits up to twice its timeout (once for handlers to
finish, once more after cancelling a request's payload, which does not stop a handler
that is writing a stream), so the grace is kept here instead, by tracking handlers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from proxy.settings import ProxySettings

log = logging.getLogger(__name__)

# After the grace: how long cancelled handlers get to record their event and end.
CANCEL_WAIT_S = 1.0
# aiohttp's own shutdown, once no handler is left (it may wait twice this).
SERVER_CLOSE_S = 0.5
# Closing the broker connection, the upstream client and the database pool, each.
CLOSE_TIMEOUT_S = 2.0
# Writing the spool (fsync) and whatever else is unbounded but short.
SLACK_S = 3.0
# A supervisor's margin over its children's deadline.
SUPERVISOR_MARGIN_S = 5.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def process_deadline_s(settings: ProxySettings) -> float:
    """The longest one proxy process takes from SIGTERM to exit."""
    return (
        settings.shutdown_timeout_s
        + CANCEL_WAIT_S
        + 2 * SERVER_CLOSE_S
        + settings.broker_wait_s
        + 3 * CLOSE_TIMEOUT_S
        + SLACK_S
    )


def stop_deadline_s(environ: Mapping[str, str] | None = None) -> float:
    """How long to give ``lectr proxy`` (with its workers, if any) after SIGTERM before
    killing it, from the settings in ``environ``."""
    settings = ProxySettings.from_env(environ)
    deadline = process_deadline_s(settings) + SUPERVISOR_MARGIN_S
    return deadline + SUPERVISOR_MARGIN_S if settings.workers > 1 else deadline


class InFlight:
    """The tasks of the requests being handled, through an app middleware."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[object]] = set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            return await handler(request)
        finally:
            self.tasks.discard(task)

    async def wait(self, timeout_s: float) -> None:
        """Return once no request is in flight, or after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.tasks and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(self.tasks), timeout=left)

    def cancel(self) -> int:
        """Cancel every request still in flight: how many."""
        for task in self.tasks:
            task.cancel()
        return len(self.tasks)


async def stop_serving(runner: web.AppRunner, in_flight: InFlight, grace_s: float) -> None:
    """Stop accepting, let requests in flight finish for ``grace_s``, cancel the rest
    (each records its event as ``shutdown``). The caller then cleans the runner up."""
    for site in list(runner.sites):
        await site.stop()
    if runner.server is not None:
        runner.server.pre_shutdown()  # idle keep-alive connections close now
    await in_flight.wait(grace_s)
    if cut := in_flight.cancel():
        log.warning("cut %d requests still open after %.1f s of shutdown", cut, grace_s)
        await in_flight.wait(CANCEL_WAIT_S)
    await asyncio.sleep(0)  # the events of the last requests are recorded (call_soon)
