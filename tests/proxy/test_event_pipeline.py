"""Events: published in batches, never blocking a request, counted when dropped, and
free of secrets and text (but for the transient counting fields)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import aio_pika
import aiohttp
import orjson
import pytest

from lectr import logs
from lectr.orgs import IssuedKey
from schema.events import EVENTS_TYPE, HEALTH_TYPE, HealthSnapshot
from tests.proxy.conftest import PROVIDER_KEY, RunningProxy, lectr_headers
from tests.support.forwarder import TcpForwarder
from tests.support.providers import FakeProviders

PROMPT = "PLANTED-PROMPT-91c2 please keep this private"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": PROMPT}]}


async def send(proxy: RunningProxy, org: IssuedKey, count: int, body: dict = CHAT) -> list[int]:
    async with aiohttp.ClientSession() as session:

        async def one() -> int:
            async with session.post(
                f"{proxy.url}/v1/chat/completions", json=body, headers=lectr_headers(org)
            ) as response:
                await response.read()
                return response.status

        return list(await asyncio.gather(*(one() for _ in range(count))))


async def wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_broker_outage_never_fails_a_request_and_drops_are_counted_exactly(
    start_proxy, org: IssuedKey, amqp_url: str, amqp_forwarder: TcpForwarder
) -> None:
    proxy = await start_proxy(amqp=amqp_forwarder.url_for(amqp_url), buffer_size=5)
    publisher = proxy.state.publisher
    assert publisher is not None and publisher.connected.is_set()
    assert await send(proxy, org, 1) == [200]
    await wait_for(lambda: publisher.published == 1)

    amqp_forwarder.cut()
    await wait_for(lambda: not publisher.connected.is_set())
    assert await send(proxy, org, 12) == [200] * 12
    assert proxy.state.buffer.dropped == 7
    assert publisher.depth == 5

    _, health = await proxy.get("/health")
    assert (health["events_dropped"], health["buffer_depth"]) == (7, 5)
    assert health["broker_connected"] is False

    amqp_forwarder.restore()
    await wait_for(lambda: publisher.published == 6)
    assert publisher.depth == 0 and publisher.publish_failures >= 1
    assert len(await proxy.events(6)) == 6
    # And new traffic flows again.
    assert await send(proxy, org, 2) == [200, 200]
    assert len(await proxy.events(2)) == 2
    assert proxy.state.buffer.dropped == 7


async def test_events_are_batched_into_few_messages(
    start_proxy, org: IssuedKey, amqp_url: str
) -> None:
    proxy = await start_proxy(publish_interval_s=0.2)
    assert await send(proxy, org, 40) == [200] * 40
    publisher = proxy.state.publisher
    await wait_for(lambda: publisher.published == 40)
    connection = await aio_pika.connect(amqp_url)
    async with connection, connection.channel() as channel:
        queue = await channel.get_queue(proxy.names.ingest)
        messages = []
        while message := await queue.get(no_ack=True, fail=False):
            if message.type == EVENTS_TYPE:
                messages.append(message)
                assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert 1 <= len(messages) < 10


async def test_health_snapshots_are_published(start_proxy, org: IssuedKey, amqp_url: str) -> None:
    proxy = await start_proxy(health_interval_s=0.1)
    await send(proxy, org, 3)
    connection = await aio_pika.connect(amqp_url)
    snapshots: list[HealthSnapshot] = []
    async with connection, connection.channel() as channel:
        queue = await channel.get_queue(proxy.names.ingest)
        deadline = asyncio.get_running_loop().time() + 5
        while not any(s.events_published == 3 for s in snapshots):
            assert asyncio.get_running_loop().time() < deadline
            message = await queue.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.05)
            elif message.type == HEALTH_TYPE:
                snapshots.append(HealthSnapshot.decode(message.body))
    snapshot = snapshots[-1]
    assert (snapshot.component, snapshot.instance) == ("proxy", "test-proxy")
    assert snapshot.events_dropped == 0


@pytest.fixture
def debug_logging(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Logging as `lectr proxy` sets it up with LECTR_LOG_LEVEL=DEBUG, captured."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logs.configure("DEBUG")
    root.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)
    yield caplog
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_no_key_or_text_in_events_except_the_counting_fields_nor_in_logs(
    debug_logging: pytest.LogCaptureFixture,
    proxy: RunningProxy,
    org: IssuedKey,
    fake: FakeProviders,
    amqp_url: str,
) -> None:
    await send(proxy, org, 1)
    await send(proxy, org, 1, {**CHAT, "stream": True})  # no usage: text rides along
    completion = "Hello from the simulated provider."
    await wait_for(lambda: proxy.state.publisher.published == 2)
    loaded_at = proxy.state.caches.loaded_at["rules"]
    await proxy.notify("rules", org.org_id)  # so the proxy logs something of its own
    await wait_for(lambda: proxy.state.caches.loaded_at["rules"] != loaded_at)

    connection = await aio_pika.connect(amqp_url)
    async with connection, connection.channel() as channel:
        queue = await channel.get_queue(proxy.names.ingest)
        bodies = []
        while message := await queue.get(no_ack=True, fail=False):
            bodies.append(message.body)
    raw = b"".join(bodies)
    assert PROVIDER_KEY.encode() not in raw and org.key.encode() not in raw
    events = [e for body in bodies if b'"events"' in body for e in orjson.loads(body)["events"]]
    assert len(events) == 2
    with_text = [e for e in events if e.get("text")]
    assert len(with_text) == 1 and with_text[0]["text"]["completion"] == completion
    for event in events:
        event.pop("text", None)
        flat = orjson.dumps(event).decode()
        assert PROMPT not in flat and "simulated provider" not in flat

    logged = debug_logging.text
    assert "reloading the rules cache" in logged  # the proxy's own lines were captured
    for secret in (PROVIDER_KEY, org.key, PROMPT, completion):
        assert secret not in logged
