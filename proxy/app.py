"""The proxy's aiohttp application: one factory, one context per resource.

Start-up order (each context waits for the one before): database reachable and schema
at this release's head or a newer one compatible with it → caches loaded → Redis
connected, its scripts loaded (with ``LECTR_REDIS_URL``) → upstream HTTP client → event
pipeline started (spooled events first). Only then does the caller start accepting
connections. Shutdown runs the contexts in reverse once no request is left (see
:mod:`proxy.shutdown`): the pipeline publishes the buffer, then spools what could not
reach the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import orjson
from aiohttp import web

from lectr import db
from lectr.settings import Settings, redact_url
from proxy import forward, http_errors, log_safety, pipeline, shared_limits, worker_metrics
from proxy.buffer import EventBuffer
from proxy.caches import Caches, run_periodic_reload
from proxy.metrics import Metrics
from proxy.settings import ProxySettings
from proxy.shared_limits import SharedLimits
from proxy.shutdown import CLOSE_TIMEOUT_S
from proxy.state import STATE, ProxyState

log = logging.getLogger(__name__)

# How long start-up waits for Redis (with LECTR_REDIS_URL) before serving without it.
REDIS_START_WAIT_S = 3.0


class StartupError(RuntimeError):
    """The proxy cannot serve: the message says why and what to do."""


def create_app(settings: Settings, proxy_settings: ProxySettings) -> web.Application:
    app = web.Application(client_max_size=proxy_settings.max_body_bytes)
    buffer = EventBuffer(
        proxy_settings.buffer_size, proxy_settings.buffer_bytes, proxy_settings.text_cap_bytes
    )
    state = ProxyState(
        settings=settings,
        proxy=proxy_settings,
        caches=Caches(_no_database),
        buffer=buffer,
        metrics=Metrics(pipeline=lambda: publisher.counters()),
    )
    state.spool = pipeline.make_spool(state)
    state.publisher = publisher = pipeline.make_publisher(state)
    app[STATE] = state
    # Outermost of all: shutdown waits for the requests in flight, then cancels them.
    app.middlewares.append(state.in_flight.middleware)
    app.middlewares.append(http_errors.middleware)  # errors, connection cap, access log
    log_safety.install()
    app.cleanup_ctx.extend((_database, _shared_limits, _upstream_client, pipeline.context))
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", worker_metrics.handle)
    app.router.add_route("*", "/v1/{rest:.*}", forward.handle)
    return app


def _no_database() -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
    raise RuntimeError("the database context has not started")


async def _database(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    pool = await db.create_pool(state.settings.database_url, min_size=1, max_size=2)
    try:
        await _check_schema(pool)
        state.caches = Caches(pool.acquire, on_reload=state.metrics.cache_reloaded)
        await state.caches.load_all()
        log.info("caches loaded: %s", state.caches.sizes())
        reloader = asyncio.create_task(
            run_periodic_reload(state.caches, state.proxy.cache_reload_s)
        )
        yield
        reloader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reloader
        await state.caches.close()
    finally:
        await db.close_pool(pool, CLOSE_TIMEOUT_S)


async def _check_schema(pool: asyncpg.Pool) -> None:
    """Refuse to start unless the schema is at this release's head, or newer and
    declaring itself compatible with it (a rolling upgrade: then warn and run)."""
    from lectr import schema_check

    release = await asyncio.to_thread(schema_check.load_release)  # Alembic: start-up only
    async with pool.acquire() as conn:
        try:
            await schema_check.require_compatible_schema(conn, release, log)
        except schema_check.IncompatibleSchema as exc:
            raise StartupError(str(exc)) from None


async def _shared_limits(app: web.Application) -> AsyncIterator[None]:
    """With LECTR_REDIS_URL: connect and load the limit scripts before serving (waiting
    up to REDIS_START_WAIT_S; if Redis does not answer, serve anyway, counting limits
    here, and keep trying in the background)."""
    state = app[STATE]
    url = state.proxy.redis_url
    if url is None:
        yield
        return
    shared = SharedLimits(
        shared_limits.connect(url),
        instance=state.proxy.instance,
        timeout_s=state.proxy.redis_timeout_ms / 1000,
        lease_s=state.proxy.redis_lease_s,
    )
    await shared.start(REDIS_START_WAIT_S)
    if shared.available:
        log.info("limits shared through Redis at %s", redact_url(url))
    state.limits.shared = shared
    state.metrics.shared_limits = shared
    try:
        yield
    finally:
        state.limits.shared = None
        await shared.close()


async def _upstream_client(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    timeout = aiohttp.ClientTimeout(
        total=None,
        sock_connect=state.proxy.connect_timeout_s,
        sock_read=state.proxy.read_timeout_s,
    )
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        skip_auto_headers=("User-Agent", "Content-Type"),
        cookie_jar=aiohttp.DummyCookieJar(),
    ) as session:
        state.session = session
        yield


async def health(request: web.Request) -> web.Response:
    """200 while serving: ``ok``, or ``degraded`` with the reasons when events are not
    all being published (the proxy still serves, so a load balancer must keep it);
    503 while starting or draining."""
    state = request.app[STATE]
    publisher = state.publisher
    assert publisher is not None
    problems = publisher.problems()
    shared = state.limits.shared
    if shared is not None and not shared.available:
        problems = [*problems, "redis_unavailable"]
    if state.draining or not state.caches.ready:
        status = "draining" if state.draining else "starting"
    else:
        status = "degraded" if problems else "ok"
    now = time.time()
    body = {
        "status": status,
        "degraded": problems,
        "instance": state.proxy.instance,
        **publisher.counters(),
        "buffer_capacity": state.buffer.capacity,
        "buffer_capacity_bytes": state.buffer.capacity_bytes,
        "redis": None
        if shared is None
        else {
            "status": "ok" if shared.available else "unavailable",
            "fallbacks": sum(shared.fallbacks.values()),
            "open_leases": shared.open_leases(),
        },
        "caches": {
            name: {
                "size": size,
                "age_s": round(now - state.caches.loaded_at[name], 3)
                if name in state.caches.loaded_at
                else None,
            }
            for name, size in state.caches.sizes().items()
        },
    }
    code = 503 if status in ("draining", "starting") else 200
    return web.Response(body=orjson.dumps(body), status=code, content_type="application/json")
