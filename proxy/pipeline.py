"""The proxy's event pipeline as an app context: publisher and spool, start to exit.

Start: claim what earlier runs spooled (published before any new event), start the
publisher, and wait up to ``LECTR_PROXY_BROKER_WAIT_S`` for the broker (serving anyway
if it is down: events wait in the buffer). Exit, once no request is left: publish what
is held for up to ``LECTR_PROXY_BROKER_WAIT_S``, stop the publisher, then spool what is
left, sanitised, and log how many events that was, and how many were lost if any.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from lectr import broker
from proxy.publisher import Publisher
from proxy.shutdown import CLOSE_TIMEOUT_S
from proxy.spool import Spool
from proxy.state import STATE, ProxyState
from schema.control import CACHES, ControlMessage

log = logging.getLogger(__name__)


def make_publisher(state: ProxyState) -> Publisher:
    spool = state.spool
    return Publisher(
        state.buffer,
        amqp_url=state.settings.amqp_url,
        names=broker.BrokerNames(state.settings.broker_prefix),
        replay_max_age=state.settings.replay_max_age,
        instance=state.proxy.instance,
        batch_size=state.proxy.publish_batch_size,
        batch_bytes=state.proxy.publish_batch_bytes,
        interval_s=state.proxy.publish_interval_s,
        health_interval_s=state.proxy.health_interval_s,
        on_control=lambda message: _control(state, message),
        on_reconnect=lambda: [state.caches.request_reload(name) for name in CACHES],
        health_details=lambda: {"caches": state.caches.sizes()},
        on_backlog_sent=spool.release if spool else lambda: None,
    )


def make_spool(state: ProxyState) -> Spool | None:
    directory = state.proxy.spool_dir
    if directory is None:
        return None
    return Spool(directory, state.proxy.spool_max_bytes, state.proxy.instance)


def _control(state: ProxyState, message: ControlMessage) -> None:
    log.info("control message: reloading the %s cache", message.cache)
    state.caches.request_reload(message.cache)


async def context(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    publisher, spool = state.publisher, state.spool
    assert publisher is not None
    if spool is not None:
        try:
            publisher.load_spooled(spool.claim())
        except OSError as exc:
            log.error("could not read the spool at %s: %s", spool.directory, exc)
    task = asyncio.create_task(publisher.run())
    # Serve at once even if the broker is down; events wait in the buffer meanwhile.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(publisher.connected.wait(), state.proxy.broker_wait_s)
    if not publisher.connected.is_set():
        log.warning("the broker is not reachable yet; events are buffered until it is")
    yield
    await publisher.drain(state.proxy.broker_wait_s)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT_S)
    if not done:
        log.warning("the event publisher did not stop in time")
    _keep_unsent(publisher, spool)


def _keep_unsent(publisher: Publisher, spool: Spool | None) -> None:
    """Spool every event not published, or log how many are lost."""
    unsent = publisher.unsent()
    if not unsent:
        if spool is not None:
            spool.release()
        return
    log.warning("shutting down with %d events not published", len(unsent))
    if spool is None:
        log.error("no spool: %d events lost", len(unsent))
        return
    try:
        written = spool.write(unsent)
    except OSError as exc:
        log.error(
            "could not write the spool at %s (%s): %d events lost",
            spool.directory,
            exc,
            len(unsent),
        )
        return
    spool.release()
    log.info("spooled %d events to %s for the next start", written, spool.directory)
    if written < len(unsent):
        log.error(
            "the spool is full (%d bytes): %d events lost", spool.max_bytes, len(unsent) - written
        )
