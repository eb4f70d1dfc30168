"""The proxy's aiohttp application: one factory, one context per resource.

Start-up order (each context waits for the one before): database reachable and schema
at head → caches loaded → upstream HTTP client → event publisher started. Only then does
the caller start accepting connections. Shutdown runs the contexts in reverse once
in-flight requests have finished: the publisher drains the buffer to the broker last.
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

from lectr import broker, db
from lectr.settings import Settings
from proxy import forward
from proxy.buffer import EventBuffer
from proxy.caches import Caches, run_periodic_reload
from proxy.metrics import Metrics
from proxy.publisher import Publisher
from proxy.settings import ProxySettings
from proxy.state import STATE, ProxyState
from schema.control import CACHES, ControlMessage

log = logging.getLogger(__name__)

# After in-flight requests finish, how long shutdown waits for the buffer to reach the broker.
DRAIN_TIMEOUT_S = 5.0
# How long shutdown waits for a connection or task to close before giving up on it.
CLOSE_TIMEOUT_S = 5.0


class StartupError(RuntimeError):
    """The proxy cannot serve: the message says why and what to do."""


def create_app(settings: Settings, proxy_settings: ProxySettings) -> web.Application:
    app = web.Application(client_max_size=proxy_settings.max_body_bytes)
    buffer = EventBuffer(proxy_settings.buffer_size)
    state = ProxyState(
        settings=settings,
        proxy=proxy_settings,
        caches=Caches(_no_database),
        buffer=buffer,
        metrics=Metrics(
            buffer_depth=lambda: state.publisher.depth if state.publisher else len(buffer),
            published=lambda: state.publisher.published if state.publisher else 0,
            dropped=lambda: buffer.dropped,
            publish_failures=lambda: state.publisher.publish_failures if state.publisher else 0,
        ),
    )
    app[STATE] = state
    app.cleanup_ctx.extend((_database, _upstream_client, _publisher))
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
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
        try:
            await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            log.warning("database connections did not close in time; closing them hard")
            pool.terminate()


async def _check_schema(pool: asyncpg.Pool) -> None:
    from lectr.migrations import head_revision  # loads Alembic: start-up only

    try:
        current = await pool.fetchval("SELECT version_num FROM alembic_version")
    except asyncpg.UndefinedTableError:
        current = None
    head = await asyncio.to_thread(head_revision)
    if current != head:
        raise StartupError(
            f"the database schema is at {current or 'nothing'}, not {head}: run `lectr migrate`"
        )


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


async def _publisher(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    publisher = Publisher(
        state.buffer,
        amqp_url=state.settings.amqp_url,
        names=broker.BrokerNames(state.settings.broker_prefix),
        delivery_limit=state.settings.ingest_delivery_limit,
        replay_max_age=state.settings.replay_max_age,
        instance=state.proxy.instance,
        batch_size=state.proxy.publish_batch_size,
        interval_s=state.proxy.publish_interval_s,
        health_interval_s=state.proxy.health_interval_s,
        on_control=lambda message: _control(state, message),
        on_reconnect=lambda: [state.caches.request_reload(name) for name in CACHES],
        health_details=lambda: {"caches": state.caches.sizes()},
    )
    state.publisher = publisher
    task = asyncio.create_task(publisher.run())
    # Serve at once even if the broker is down; events wait in the buffer meanwhile.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(publisher.connected.wait(), state.proxy.broker_wait_s)
    if not publisher.connected.is_set():
        log.warning("the broker is not reachable yet; events are buffered until it is")
    yield
    await publisher.drain(DRAIN_TIMEOUT_S)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT_S)
    if not done:
        log.warning("the event publisher did not stop in time")


def _control(state: ProxyState, message: ControlMessage) -> None:
    log.info("control message: reloading the %s cache", message.cache)
    state.caches.request_reload(message.cache)


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    publisher = state.publisher
    now = time.time()
    body = {
        "status": "draining" if state.draining else "ok" if state.caches.ready else "starting",
        "instance": state.proxy.instance,
        "broker_connected": bool(publisher and publisher.connected.is_set()),
        "buffer_depth": publisher.depth if publisher else len(state.buffer),
        "buffer_capacity": state.buffer.capacity,
        "events_published": publisher.published if publisher else 0,
        "events_dropped": state.buffer.dropped,
        "publish_failures": publisher.publish_failures if publisher else 0,
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
    status = 200 if state.caches.ready and not state.draining else 503
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def metrics(request: web.Request) -> web.Response:
    body = request.app[STATE].metrics.render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})
