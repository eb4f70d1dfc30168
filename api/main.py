"""``lectr api``: serve the management API on ``LECTR_HOST:LECTR_API_PORT`` until SIGTERM.

The process starts while the database is down (the pool opens no connection up front:
``min_size=0``); requests then answer 503 ``unavailable`` until it is back, and
``/api/health`` says ``"database": false``. A port in use stops start-up with one line
(exit 1). SIGTERM or SIGINT: stop accepting, give open requests up to
:data:`SHUTDOWN_TIMEOUT_S`, close the pool, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
from collections.abc import Mapping

from aiohttp import web

from api.app import create_app
from api.settings import ApiSettings
from api.static import missing_build
from lectr.db import close_pool, create_pool
from lectr.errors import CommandError
from lectr.settings import Settings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
POOL_MAX_SIZE = 10
POOL_CLOSE_TIMEOUT_S = 5.0
# Open requests get this long to finish after SIGTERM.
SHUTDOWN_TIMEOUT_S = 10.0


def run(settings: Settings, argv: list[str]) -> int:
    argparse.ArgumentParser(
        prog="lectr api",
        description="Serve the management API on LECTR_HOST:LECTR_API_PORT until SIGTERM.",
    ).parse_args(argv)
    api_settings = ApiSettings.from_env()
    for problem in api_settings.problems(settings):
        log.warning("%s", problem)
    missing = missing_build(api_settings)
    if missing is not None:
        log.warning("%s", missing)
    return asyncio.run(serve(settings, api_settings))


def stop_deadline_s(environ: Mapping[str, str]) -> float:
    """How long the API needs to stop after SIGTERM (``lectr up`` waits that long)."""
    return SHUTDOWN_TIMEOUT_S + POOL_CLOSE_TIMEOUT_S + 5.0


async def serve(
    settings: Settings, api_settings: ApiSettings, *, stop: asyncio.Event | None = None
) -> int:
    """Serve until ``stop`` is set (by SIGTERM or SIGINT when not given)."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if stop is None else ()
    stop = stop or asyncio.Event()
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    pool = await create_pool(
        settings.database_url,
        min_size=0,
        max_size=POOL_MAX_SIZE,
        connect_timeout_s=CONNECT_TIMEOUT_S,
    )
    runner = web.AppRunner(
        create_app(settings, api_settings, pool),
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
    try:
        await runner.setup()
        await _listen(runner, settings)
        log.info("api serving on http://%s:%d", settings.host, settings.api_port)
        await stop.wait()
        log.info("stopping: open requests get up to %g s", SHUTDOWN_TIMEOUT_S)
    finally:
        await runner.cleanup()
        await close_pool(pool, POOL_CLOSE_TIMEOUT_S)
        for signum in signals:
            loop.remove_signal_handler(signum)
    log.info("api stopped")
    return 0


async def _listen(runner: web.AppRunner, settings: Settings) -> None:
    try:
        await web.TCPSite(runner, settings.host, settings.api_port).start()
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else str(exc)
        raise CommandError(
            f"cannot serve the API on {settings.host}:{settings.api_port} "
            f"(LECTR_HOST, LECTR_API_PORT): {reason}"
        ) from exc
