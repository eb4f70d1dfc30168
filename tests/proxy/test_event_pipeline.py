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
from tests.support.events import sample_event
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

    status, health = await proxy.get("/health")
    assert (health["events_dropped"], health["buffer_depth"]) == (7, 5)
    assert health["broker_connected"] is False
    # Degraded, not down: the proxy serves, so a load balancer must keep it.
    assert status == 200 and health["status"] == "degraded"
    assert any(r.startswith("broker unreachable since ") for r in health["degraded"])
    assert "events dropped: buffer full (7 in all)" in health["degraded"]

    amqp_forwarder.restore()
    await wait_for(lambda: publisher.published == 6)
    assert publisher.depth == 0 and publisher.publish_failures >= 1
    assert len(await proxy.events(6)) == 6
    # And new traffic flows again.
    assert await send(proxy, org, 2) == [200, 200]
    assert len(await proxy.events(2)) == 2
    assert proxy.state.buffer.dropped == 7
    status, health = await proxy.get("/health")
    assert status == 200 and not any(r.startswith("broker") for r in health["degraded"])


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


async def ingest_messages(proxy: RunningProxy, amqp_url: str) -> list[aio_pika.IncomingMessage]:
    """Every event message on the proxy's ingest queue, taken off it."""
    connection = await aio_pika.connect(amqp_url)
    messages = []
    async with connection, connection.channel() as channel:
        queue = await channel.get_queue(proxy.names.ingest)
        while message := await queue.get(no_ack=True, fail=False):
            if message.type == EVENTS_TYPE:
                messages.append(message)
    return messages


def event_ids(messages: list[aio_pika.IncomingMessage]) -> list[str]:
    return [e["id"] for m in messages for e in orjson.loads(m.body)["events"]]


async def test_an_unencodable_event_is_dropped_alone_and_nothing_reconnects(
    start_proxy, org: IssuedKey, amqp_url: str
) -> None:
    # Events gathered for half a second go out in one batch: the bad one among good ones.
    proxy = await start_proxy(publish_interval_s=0.5)
    publisher = proxy.state.publisher
    connection = publisher._connection
    reloads = dict(proxy.state.metrics.cache_reloads)
    assert await send(proxy, org, 2) == [200, 200]
    bad = sample_event(text=None, feature="caf\udce9-\udcff")  # orjson refuses it
    assert proxy.state.buffer.put(bad)
    assert await send(proxy, org, 1) == [200]
    await wait_for(lambda: publisher.published == 3 and publisher.events_unencodable == 1)

    ids = event_ids(await ingest_messages(proxy, amqp_url))
    assert len(ids) == 3 and str(bad.id) not in ids
    assert publisher.publish_failures == 0 and publisher._connection is connection
    assert proxy.state.metrics.cache_reloads == reloads  # no reconnect: no cache reload
    status, health = await proxy.get("/health")
    assert status == 200 and health["events_unencodable"] == 1
    assert health["status"] == "degraded"  # for a while, so someone looks
    assert "events that cannot be encoded (1 in all)" in health["degraded"]
    _, metrics = await proxy.get("/metrics")
    assert "lectr_proxy_events_unencodable_total 1.0" in metrics


async def test_batches_are_cut_by_bytes(start_proxy, org: IssuedKey, amqp_url: str) -> None:
    proxy = await start_proxy(publish_interval_s=0.2, publish_batch_bytes=4096)
    assert await send(proxy, org, 30) == [200] * 30
    await wait_for(lambda: proxy.state.publisher.published == 30)
    messages = await ingest_messages(proxy, amqp_url)
    assert len(set(event_ids(messages))) == 30
    assert len(messages) > 5 and all(len(m.body) <= 4096 for m in messages)


async def test_large_prompts_buffered_in_an_outage_go_out_in_messages_under_the_limit(
    start_proxy, org: IssuedKey, amqp_url: str, amqp_forwarder: TcpForwarder
) -> None:
    limit = 1024 * 1024
    proxy = await start_proxy(
        amqp=amqp_forwarder.url_for(amqp_url), publish_batch_bytes=limit, broker_wait_s=2.0
    )
    publisher = proxy.state.publisher
    amqp_forwarder.cut()
    await wait_for(lambda: not publisher.connected.is_set())
    prompt = "large prompt " * (200 * 1024 // 13)  # 200 KiB
    body = {**CHAT, "stream": True, "messages": [{"role": "user", "content": prompt}]}
    assert await send(proxy, org, 70, body) == [200] * 70
    assert len(proxy.state.buffer) == 70 and proxy.state.buffer.bytes > 70 * 200 * 1024

    amqp_forwarder.restore()
    await wait_for(lambda: publisher.published == 70, timeout_s=20)
    messages = await ingest_messages(proxy, amqp_url)
    assert sorted(set(event_ids(messages))) == sorted(event_ids(messages))
    assert len(event_ids(messages)) == 70
    assert len(messages) >= 14 and all(len(m.body) <= limit for m in messages)
    events = [e for m in messages for e in orjson.loads(m.body)["events"]]
    assert all(e["text"]["prompt"][0]["content"] == prompt for e in events)
    assert publisher.events_refused == 0 and proxy.state.buffer.bytes == 0


async def bind_size_limit(proxy: RunningProxy, amqp_url: str, max_bytes: int) -> None:
    """A queue on the proxy's events exchange that refuses (nacks) any message over
    ``max_bytes``, as RabbitMQ refuses one over its max message size: it holds at most
    ``max_bytes``, refuses what does not fit, and drops what it takes at once."""
    connection = await aio_pika.connect(amqp_url)
    async with connection, connection.channel() as channel:
        queue = await channel.declare_queue(
            f"{proxy.names.prefix}.size-limit",
            auto_delete=False,
            arguments={
                "x-max-length-bytes": max_bytes,
                "x-overflow": "reject-publish",
                "x-message-ttl": 0,
            },
        )
        await queue.bind(proxy.names.events, "ingest.events")


async def test_a_message_the_broker_refuses_is_split_and_a_single_refused_event_dropped(
    start_proxy, org: IssuedKey, amqp_url: str
) -> None:
    proxy = await start_proxy(publish_interval_s=0.3, health_interval_s=3600)
    publisher = proxy.state.publisher
    await bind_size_limit(proxy, amqp_url, 64 * 1024)
    prompt = "p" * 20_000
    body = {**CHAT, "stream": True, "messages": [{"role": "user", "content": prompt}]}
    huge = {**body, "messages": [{"role": "user", "content": "h" * 100_000}]}
    statuses = await asyncio.gather(send(proxy, org, 12, body), send(proxy, org, 1, huge))
    assert statuses == [[200] * 12, [200]]
    await wait_for(lambda: publisher.published == 12 and publisher.events_refused == 1)

    # A refused message may still have reached the ingest queue (another queue took it):
    # inserts are idempotent, so what counts is that every event got through.
    events = [
        e for m in await ingest_messages(proxy, amqp_url) for e in orjson.loads(m.body)["events"]
    ]
    small = {e["id"] for e in events if e["text"]["prompt"][0]["content"] == prompt}
    assert len(small) == 12
    assert publisher.publish_failures == 0 and len(proxy.state.buffer) == 0
    status, health = await proxy.get("/health")
    assert status == 200 and health["events_refused"] == 1
    assert "events refused by the broker (1 in all)" in health["degraded"]
    connection = await aio_pika.connect(amqp_url)
    async with connection, connection.channel() as channel:
        await channel.queue_delete(f"{proxy.names.prefix}.size-limit")
