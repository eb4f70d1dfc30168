"""``lectr proxy [--workers N]``: serve ``/v1/*`` on ``LECTR_HOST:LECTR_PROXY_PORT``.

With ``--workers N`` (or ``LECTR_PROXY_WORKERS``) above 1, this process supervises N
worker processes that share the port through ``SO_REUSEPORT``; each has its own
caches, buffer and publisher, so all of a machine's cores serve traffic. A worker also
serves its metrics to the parent on a unix socket, so ``/metrics`` answers the sum over
all workers (:mod:`proxy.worker_metrics`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys

import uvloop
from aiohttp import web

from lectr.db import DatabaseUnavailable
from lectr.settings import Settings, SettingsError
from proxy import shutdown, worker_metrics, workers
from proxy.app import StartupError, create_app
from proxy.connections import ProxyRunner
from proxy.overrides import log_overrides
from proxy.settings import ProxySettings
from proxy.state import STATE

log = logging.getLogger("lectr.proxy")

# How long `lectr proxy` (with its workers) needs to stop after SIGTERM: `lectr up` asks.
stop_deadline_s = shutdown.stop_deadline_s


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lectr proxy",
        description="Serve /v1/* for clients on LECTR_HOST:LECTR_PROXY_PORT.",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes sharing the port (default: LECTR_PROXY_WORKERS or 1)",
    )
    return parser


def run(settings: Settings, argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    proxy_settings = ProxySettings.from_env()
    count = args.workers if args.workers is not None else proxy_settings.workers
    if count < 1:
        raise SettingsError("--workers", f"must be at least 1, got {count}")
    if count > 1:
        # Each worker exits within its own deadline; the margin covers process exit.
        stop_timeout = shutdown.process_deadline_s(proxy_settings) + shutdown.SUPERVISOR_MARGIN_S
        return workers.supervise(count, proxy_settings.instance, stop_timeout)
    settings.warn_about_dev_defaults(admin_secret=False)
    try:
        uvloop.run(serve(settings, proxy_settings, reuse_port=workers.is_worker()))
    except (StartupError, DatabaseUnavailable) as exc:
        print(f"lectr: {exc}", file=sys.stderr)
        return 1
    return 0


async def serve(settings: Settings, proxy_settings: ProxySettings, *, reuse_port: bool) -> None:
    """Start in order, serve until SIGINT/SIGTERM, then shut down in order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    app = create_app(settings, proxy_settings)
    runner = ProxyRunner(  # client timeouts, connection cap, errors in OpenAI's shape
        app,
        handler_cancellation=True,
        # The grace is kept by shutdown.stop_serving: aiohttp's own is only for leftovers.
        shutdown_timeout=shutdown.SERVER_CLOSE_S,
        access_log=None,
    )
    await runner.setup()  # database, caches, upstream client, publisher
    # What start-up loaded (SQLAlchemy, Alembic, the caches) lives as long as the process:
    # move it out of the collector's sight, and collect young objects less often (most
    # of a request's objects are freed by reference counting anyway), so collections
    # stay rare and short under load.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)
    metrics_server: web.AppRunner | None = None
    try:
        # As a worker of `--workers N`: its metrics for the parent, on a unix socket.
        metrics_server = await worker_metrics.serve_worker(
            app[STATE].metrics, workers.worker_index()
        )
        site = web.TCPSite(
            runner, settings.host, settings.proxy_port, reuse_port=reuse_port, backlog=1024
        )
        await site.start()
        log.info(
            "proxy %s listening on %s:%d",
            proxy_settings.instance,
            settings.host,
            settings.proxy_port,
        )
        log_overrides(proxy_settings.base_urls)
        await stop.wait()
        log.info("stopping: finishing in-flight requests, then draining events")
        state = app[STATE]
        state.draining = True
        await shutdown.stop_serving(runner, state.in_flight, proxy_settings.shutdown_timeout_s)
    finally:
        await runner.cleanup()
        if metrics_server is not None:
            await metrics_server.cleanup()
    log.info("proxy stopped")
