"""`lectr proxy` as a process: start-up checks, graceful shutdown, workers."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aio_pika
import aiohttp
import pytest
from aiohttp import web

from lectr import migrations
from lectr.broker import BrokerNames, delete_topology
from lectr.orgs import IssuedKey
from schema.events import EVENTS_TYPE, RequestEvent, decode_events
from tests.proxy.conftest import CHAT, PEPPER, chat, lectr_headers
from tests.support.forwarder import TcpForwarder
from tests.support.processes import free_port, start_lectr, wait_for_health
from tests.support.providers import FakeProviders, Received, openai_chunk, sse


class ProxyProcess:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.port = int(env["LECTR_PROXY_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = start_lectr(["proxy", *args], env)

    async def ready(self, timeout_s: float = 20.0) -> None:
        await wait_for_health(self.url, self.process, timeout_s)

    def exit(self, timeout_s: float = 30.0) -> tuple[int, str]:
        """Wait for the process to exit by itself: (code, stderr)."""
        _, stderr = self.process.communicate(timeout=timeout_s)
        return self.process.returncode, stderr

    def stop(self, timeout_s: float = 30.0) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=timeout_s)
        return self.process.returncode, stderr


@pytest.fixture
async def proxy_env(
    lectr_env: dict[str, str],
    broker_names: BrokerNames,
    amqp_url: str,
    fake: FakeProviders,
    tmp_path: Path,
) -> AsyncIterator[dict[str, str]]:
    names = BrokerNames(f"{broker_names.prefix}_{uuid.uuid4().hex[:8]}")
    env = {
        **lectr_env,
        "LECTR_BROKER_PREFIX": names.prefix,
        "LECTR_KEY_PEPPER": PEPPER,
        "LECTR_PROXY_PORT": str(free_port()),
        "LECTR_INSTANCE_NAME": "proc",
        "LECTR_PROXY_SPOOL_DIR": str(tmp_path / "spool"),
        **fake.env(),
    }
    yield env
    connection = await aio_pika.connect(amqp_url)
    async with connection, connection.channel() as channel:
        await delete_topology(channel, names)


@pytest.fixture
def start(proxy_env: dict[str, str]) -> Callable[..., ProxyProcess]:
    started: list[ProxyProcess] = []

    def start_process(*args: str, **env: str) -> ProxyProcess:
        process = ProxyProcess({**proxy_env, **env}, *args)
        started.append(process)
        return process

    yield start_process
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.communicate()


async def proxy_health(url: str) -> dict:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/health") as response:
        assert response.status == 200
        return await response.json()


async def ingest_events(amqp_url: str, prefix: str) -> list[RequestEvent]:
    """Every request event on ``prefix``'s ingest queue ([] while it does not exist)."""
    connection = await aio_pika.connect(amqp_url)
    events: list[RequestEvent] = []
    async with connection, connection.channel() as channel:
        try:
            queue = await channel.get_queue(BrokerNames(prefix).ingest)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return []
        while message := await queue.get(no_ack=True, fail=False):
            if message.type == EVENTS_TYPE:
                events.extend(decode_events(message.body).events)
    return events


async def test_sigterm_lets_an_open_stream_finish_and_drains_events(
    start, org: IssuedKey, fake: FakeProviders, amqp_url: str, proxy_env: dict[str, str]
) -> None:
    async def slow(request: web.Request, received: Received) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for word in ("one", "two", "three", "four"):
            await response.write(sse(openai_chunk("gpt-4o", word)))
            await asyncio.sleep(0.25)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    fake.respond_with(slow)
    proxy = start()
    await proxy.ready()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{proxy.url}/v1/chat/completions",
            json={"model": "gpt-4o", **CHAT, "stream": True},
            headers=lectr_headers(org),
        ) as response,
    ):
        await response.content.readuntil(b"\n\n")
        proxy.process.send_signal(signal.SIGTERM)  # mid-stream
        rest = await response.read()
    assert rest.endswith(b"data: [DONE]\n\n") and b"four" in rest
    code, stderr = await asyncio.to_thread(proxy.stop)
    assert code == 0, stderr
    assert "proxy stopped" in stderr
    [event] = await ingest_events(amqp_url, proxy_env["LECTR_BROKER_PREFIX"])
    assert event.streaming and event.status_code == 200 and event.error_category is None
    assert event.proxy_instance == "proc"


async def test_refuses_to_start_on_an_old_schema(start, scratch_database_url: str) -> None:
    await asyncio.to_thread(migrations.migrate, scratch_database_url)
    await asyncio.to_thread(migrations.downgrade, scratch_database_url, "-1")
    proxy = start(LECTR_DATABASE_URL=scratch_database_url)
    code, stderr = await asyncio.to_thread(proxy.exit)
    assert code == 1
    assert "run `lectr migrate`" in stderr


async def test_unreachable_database_stops_start_up_with_a_clear_message(
    start, database_url: str, postgres_forwarder: TcpForwarder
) -> None:
    postgres_forwarder.cut()
    proxy = start(LECTR_DATABASE_URL=postgres_forwarder.url_for(database_url))
    code, stderr = await asyncio.to_thread(proxy.exit)
    assert code == 1
    assert "LECTR_DATABASE_URL" in stderr.strip().splitlines()[-1]


async def test_starts_and_serves_while_the_broker_is_down(
    start, org: IssuedKey, amqp_url: str, amqp_forwarder: TcpForwarder, proxy_env: dict[str, str]
) -> None:
    amqp_forwarder.cut()
    proxy = start(LECTR_AMQP_URL=amqp_forwarder.url_for(amqp_url), LECTR_PROXY_BROKER_WAIT_S="0.5")
    await proxy.ready()
    assert (await chat(proxy, org, "gpt-4o")).status == 200
    health = await proxy_health(proxy.url)  # serving, and saying why events wait
    assert health["status"] == "degraded" and health["broker_connected"] is False
    amqp_forwarder.restore()
    deadline = asyncio.get_running_loop().time() + 15
    events: list[RequestEvent] = []
    while not events:  # the proxy declares its queues once the broker is back
        assert asyncio.get_running_loop().time() < deadline, "event never published"
        await asyncio.sleep(0.2)
        events = await ingest_events(amqp_url, proxy_env["LECTR_BROKER_PREFIX"])
    assert len(events) == 1
    code, stderr = await asyncio.to_thread(proxy.stop)
    assert code == 0, stderr


@pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT balancing is Linux's")
async def test_workers_share_one_port(
    start, org: IssuedKey, amqp_url: str, proxy_env: dict[str, str]
) -> None:
    proxy = start("--workers", "2")
    await proxy.ready()
    seen: set[str] = set()
    deadline = asyncio.get_running_loop().time() + 20
    while seen != {"proc-w0", "proc-w1"}:  # both workers are up and answering
        assert asyncio.get_running_loop().time() < deadline, f"only {seen} answered"
        async with aiohttp.ClientSession() as session, session.get(f"{proxy.url}/health") as r:
            if r.status == 200:
                seen.add((await r.json())["instance"])

    # A new connection each time, so the kernel can pick either worker.
    statuses = [(await chat(proxy, org, "gpt-4o")).status for _ in range(24)]
    assert statuses == [200] * 24
    code, stderr = await asyncio.to_thread(proxy.stop)
    assert code == 0, stderr
    events = await ingest_events(amqp_url, proxy_env["LECTR_BROKER_PREFIX"])
    assert len(events) == 24
    assert {e.proxy_instance for e in events} == {"proc-w0", "proc-w1"}
    assert not os.environ.get("LECTR_PROXY_WORKER_INDEX")


@pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT balancing is Linux's")
async def test_sigterm_with_workers_cuts_streams_at_the_grace_and_records_them(
    start, org: IssuedKey, fake: FakeProviders, amqp_url: str, proxy_env: dict[str, str]
) -> None:
    grace_s, streams = 2.0, 4

    async def endless(request: web.Request, received: Received) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index in range(1000):
            await response.write(sse(openai_chunk("gpt-4o", f"word{index}")))
            await asyncio.sleep(0.1)
        return response

    fake.respond_with(endless, times=streams)
    proxy = start(
        "--workers",
        "2",
        LECTR_PROXY_SHUTDOWN_TIMEOUT_S=str(grace_s),
        LECTR_PROXY_BROKER_WAIT_S="2",
    )
    await proxy.ready()

    async def stream(session: aiohttp.ClientSession, started: asyncio.Event) -> bytes:
        async with session.post(
            f"{proxy.url}/v1/chat/completions",
            json={"model": "gpt-4o", **CHAT, "stream": True},
            headers=lectr_headers(org),
        ) as response:
            received = await response.content.readuntil(b"\n\n")
            started.set()
            try:
                while chunk := await response.content.readany():
                    received += chunk
            except aiohttp.ClientPayloadError:
                pass  # cut mid-stream, as it must be
            return received

    sessions = [aiohttp.ClientSession() for _ in range(streams)]  # a connection each
    starts = [asyncio.Event() for _ in range(streams)]
    tasks = [asyncio.create_task(stream(s, e)) for s, e in zip(sessions, starts, strict=True)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in starts)), 10)
    signalled = time.monotonic()
    proxy.process.send_signal(signal.SIGTERM)
    bodies = await asyncio.wait_for(asyncio.gather(*tasks), 20)
    code, stderr = await asyncio.to_thread(proxy.exit, 20)
    took = time.monotonic() - signalled
    for session in sessions:
        await session.close()

    assert code == 0, stderr
    # The grace, then a quick drain (about 0.1 s here): not twice the grace, as aiohttp's
    # own shutdown takes, nor the whole stop deadline.
    assert grace_s <= took < 2 * grace_s, (took, stderr)
    assert all(b"[DONE]" not in body for body in bodies)
    assert "requests still open after 2.0 s of shutdown" in stderr
    events = await ingest_events(amqp_url, proxy_env["LECTR_BROKER_PREFIX"])
    assert len(events) == streams
    assert {(e.error_category, e.error_source, e.streaming) for e in events} == {
        ("shutdown", "lectr", True)
    }


async def test_events_spooled_at_sigterm_are_published_by_the_next_proxy(
    start, org: IssuedKey, amqp_url: str, amqp_forwarder: TcpForwarder, proxy_env: dict[str, str]
) -> None:
    first = start(LECTR_AMQP_URL=amqp_forwarder.url_for(amqp_url), LECTR_PROXY_BROKER_WAIT_S="0.5")
    await first.ready()
    amqp_forwarder.cut()
    statuses = [(await chat(first, org, "gpt-4o")).status for _ in range(3)]
    assert statuses == [200] * 3
    code, stderr = await asyncio.to_thread(first.stop)
    assert code == 0, stderr
    assert "shutting down with 3 events not published" in stderr
    assert "spooled 3 events to" in stderr

    amqp_forwarder.restore()
    second = start()  # same spool directory, the broker reachable
    await second.ready()
    deadline = asyncio.get_running_loop().time() + 10
    events: list[RequestEvent] = []
    while len(events) < 3:
        assert asyncio.get_running_loop().time() < deadline, f"only {len(events)} events"
        await asyncio.sleep(0.1)
        events += await ingest_events(amqp_url, proxy_env["LECTR_BROKER_PREFIX"])
    assert len({e.id for e in events}) == len(events) == 3
    assert {e.org_id for e in events} == {org.org_id}
    code, stderr = await asyncio.to_thread(second.stop)
    assert code == 0, stderr
    assert os.listdir(proxy_env["LECTR_PROXY_SPOOL_DIR"]) == []
