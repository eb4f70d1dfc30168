"""A proxy running in the test's event loop, in front of simulated providers.

Each proxy gets broker names of its own (under the session's prefix), so the events a
test reads from its ingest queue are only its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aio_pika
import aiohttp
import asyncpg
import pytest
from aiohttp import web

from lectr.broker import BrokerNames, delete_topology
from lectr.orgs import IssuedKey, create_org
from lectr.settings import Settings
from proxy.app import create_app
from proxy.connections import ProxyRunner
from proxy.settings import ProxySettings
from proxy.state import STATE, ProxyState
from schema.control import ControlMessage
from schema.events import EVENTS_TYPE, RequestEvent, decode_events
from tests.conftest import DELIVERY_LIMIT, REPLAY_MAX_AGE
from tests.support.providers import FakeProviders

PEPPER = "test-pepper-0123456789abcdef"
PROVIDER_KEY = "sk-test-provider-key-0123456789"
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@dataclass
class RunningProxy:
    url: str
    app: web.Application
    names: BrokerNames
    amqp_url: str
    runner: web.AppRunner

    @property
    def state(self) -> ProxyState:
        return self.app[STATE]

    async def events(self, count: int, timeout_s: float = 5.0) -> list[RequestEvent]:
        """Wait for ``count`` request events on this proxy's ingest queue."""
        events: list[RequestEvent] = []
        connection = await aio_pika.connect(self.amqp_url)
        async with connection, connection.channel() as channel:
            queue = await channel.get_queue(self.names.ingest)
            deadline = asyncio.get_running_loop().time() + timeout_s
            while len(events) < count:
                message = await queue.get(no_ack=True, fail=False)
                if message is None:
                    if asyncio.get_running_loop().time() > deadline:
                        break
                    await asyncio.sleep(0.02)
                    continue
                if message.type == EVENTS_TYPE:
                    events.extend(decode_events(message.body).events)
        return events

    async def get(self, path: str) -> tuple[int, Any]:
        """GET ``path``: (status, parsed JSON body or text)."""
        async with aiohttp.ClientSession() as session, session.get(f"{self.url}{path}") as r:
            body = await r.json() if r.content_type == "application/json" else await r.text()
            return r.status, body

    async def notify(self, cache: str, org_id: uuid.UUID | None = None) -> None:
        connection = await aio_pika.connect(self.amqp_url)
        async with connection, connection.channel() as channel:
            exchange = await channel.get_exchange(self.names.control)
            await exchange.publish(
                aio_pika.Message(ControlMessage(cache, org_id).encode()), routing_key=""
            )


StartProxy = Callable[..., Awaitable[RunningProxy]]


@pytest.fixture
async def start_proxy(
    database_url: str, amqp_url: str, broker_names: BrokerNames, fake: FakeProviders
) -> AsyncIterator[StartProxy]:
    """Start a proxy: ``await start_proxy(amqp=url, database=url, **ProxySettings fields)``."""
    started: list[RunningProxy] = []

    async def start(
        *, amqp: str | None = None, database: str | None = None, **overrides: Any
    ) -> RunningProxy:
        names = BrokerNames(f"{broker_names.prefix}_{uuid.uuid4().hex[:8]}")
        settings = Settings(
            database_url=database or database_url,
            amqp_url=amqp or amqp_url,
            key_pepper=PEPPER,
            broker_prefix=names.prefix,
            ingest_delivery_limit=DELIVERY_LIMIT,
            replay_max_age=REPLAY_MAX_AGE,
        )
        proxy_settings = dataclasses.replace(
            ProxySettings(),
            **{"base_urls": fake.base_urls(), "instance": "test-proxy", **overrides},
        )
        app = create_app(settings, proxy_settings)
        # The server options of `lectr proxy` (client timeouts, connection cap, errors).
        runner = ProxyRunner(app, handler_cancellation=True, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        running = RunningProxy(f"http://127.0.0.1:{port}", app, names, amqp_url, runner)
        started.append(running)
        return running

    yield start
    for running in started:
        await asyncio.wait_for(running.runner.cleanup(), 15)
        connection = await aio_pika.connect(amqp_url)
        async with connection, connection.channel() as channel:
            await delete_topology(channel, running.names)


@pytest.fixture
async def proxy(start_proxy: StartProxy, org: IssuedKey) -> RunningProxy:
    """A proxy with default settings, started after ``org`` exists."""
    return await start_proxy()


@pytest.fixture
async def org(db: asyncpg.Connection) -> IssuedKey:
    """A new organisation with one key (create it before starting the proxy)."""
    return await create_org(db, f"org-{uuid.uuid4().hex[:10]}", pepper=PEPPER)


def lectr_headers(org: IssuedKey, **extra: str) -> dict[str, str]:
    return {"X-Lectr-Key": org.key, "Authorization": f"Bearer {PROVIDER_KEY}", **extra}


class HasUrl(Protocol):
    url: str


async def chat(proxy: HasUrl, org: IssuedKey, model: str, **headers: str) -> aiohttp.ClientResponse:
    """One chat completion through ``proxy`` on a new connection; the body is read."""
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{proxy.url}/v1/chat/completions",
            json={"model": model, **CHAT},
            headers=lectr_headers(org, **headers),
        )
        await response.read()
        return response


async def add_rule(db: asyncpg.Connection, org: IssuedKey, **columns: object) -> uuid.UUID:
    names = ", ".join(columns)
    values = ", ".join(f"${i}" for i in range(2, len(columns) + 2))
    return await db.fetchval(
        f"INSERT INTO routing_rules (org_id, {names}) VALUES ($1, {values}) RETURNING id",
        org.org_id,
        *columns.values(),
    )
