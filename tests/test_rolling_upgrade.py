"""A rolling upgrade: the next release's migration is applied under a running proxy and
consumer of this release, which keep serving and storing; processes of this release
started afterwards accept the newer schema when it declares itself compatible, and
refuse it when it does not.

The next release is played by a migration file kept in the tests
(:mod:`tests.support.releases`), applied with Alembic in the test process.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import aiohttp
import asyncpg
import pytest

from lectr import migrations
from lectr.broker import BrokerNames, delete_topology
from lectr.db import asyncpg_dsn
from lectr.orgs import IssuedKey, create_org
from tests.support.cli import run_lectr
from tests.support.processes import free_port, start_lectr, wait_for_health
from tests.support.providers import FakeProviders
from tests.support.releases import NEXT_RELEASE_CONTRACT, NEXT_RELEASE_EXPAND, NEXT_REVISION

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
REQUESTS_PER_S = 20
COMPATIBLE = "is newer than this release (0006) and declares itself compatible with it: running"


@pytest.fixture
async def env(
    scratch_database_url: str,
    lectr_env: dict[str, str],
    broker_names: BrokerNames,
    amqp_url: str,
    fake: FakeProviders,
    tmp_path: Path,
) -> AsyncIterator[dict[str, str]]:
    """A database of the test's own at this release's head, and broker names of its own."""
    await asyncio.to_thread(migrations.migrate, scratch_database_url)
    names = BrokerNames(f"{broker_names.prefix}_{uuid.uuid4().hex[:8]}")
    yield {
        **lectr_env,
        "LECTR_DATABASE_URL": scratch_database_url,
        "LECTR_BROKER_PREFIX": names.prefix,
        "LECTR_PROXY_SPOOL_DIR": str(tmp_path / "spool"),
        "LECTR_CONSUMER_FLUSH_INTERVAL_S": "0.2",
        **fake.env(),
    }
    connection = await aio_pika.connect(amqp_url)
    async with connection, connection.channel() as channel:
        await delete_topology(channel, names)


class Processes:
    """``lectr`` processes started by a test, stopped with SIGTERM at the end."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.started: list[subprocess.Popen[str]] = []

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        process = start_lectr(args, {**self.env, **env})
        self.started.append(process)
        return process

    async def proxy(self, name: str) -> tuple[str, subprocess.Popen[str]]:
        port = free_port()
        process = self.start("proxy", LECTR_PROXY_PORT=str(port), LECTR_INSTANCE_NAME=name)
        url = f"http://127.0.0.1:{port}"
        await wait_for_health(url, process, timeout_s=20)
        return url, process

    @staticmethod
    async def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(process.communicate, timeout=30)
        return process.returncode, stderr


@pytest.fixture
async def processes(env: dict[str, str]) -> AsyncIterator[Processes]:
    running = Processes(env)
    yield running
    for process in running.started:
        if process.poll() is None:
            process.kill()
            await asyncio.to_thread(process.communicate, timeout=10)


async def _org(url: str, pepper: str) -> IssuedKey:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await create_org(conn, f"rolling-{uuid.uuid4().hex[:8]}", pepper=pepper)
    finally:
        await conn.close()


async def _chat(session: aiohttp.ClientSession, proxy_url: str, org: IssuedKey) -> int:
    async with session.post(
        f"{proxy_url}/v1/chat/completions",
        json=CHAT,
        headers={"X-Lectr-Key": org.key, "Authorization": "Bearer sk-rolling"},
    ) as response:
        await response.read()
        return response.status


async def _send_until(
    stop: asyncio.Event, proxy_url: str, org: IssuedKey, statuses: list[int]
) -> None:
    """Start a request every 1/REQUESTS_PER_S seconds until ``stop``, each on its own."""
    async with aiohttp.ClientSession() as session:
        sent: list[asyncio.Task[int]] = []
        while not stop.is_set():
            sent.append(asyncio.create_task(_chat(session, proxy_url, org)))
            await asyncio.sleep(1 / REQUESTS_PER_S)
        statuses.extend(await asyncio.gather(*sent))


async def _stored(url: str, org: IssuedKey, expected: int, timeout_s: float) -> tuple[int, int]:
    """(rows, distinct ids) of the org's request_logs once ``expected`` rows are in."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        query = "SELECT count(*), count(DISTINCT id) FROM request_logs WHERE org_id = $1"
        while True:
            rows = await conn.fetchval(query, org.org_id)
            if rows >= expected or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # a redelivered batch would show up by now
        return tuple(await conn.fetchrow(query, org.org_id))
    finally:
        await conn.close()


async def test_migrating_under_a_running_proxy_and_consumer_loses_nothing(
    env: dict[str, str], processes: Processes
) -> None:
    url = env["LECTR_DATABASE_URL"]
    org = await _org(url, env["LECTR_KEY_PEPPER"])
    consumer = processes.start("consumer")
    proxy_url, proxy = await processes.proxy("old-release")

    stop, statuses = asyncio.Event(), []
    sender = asyncio.create_task(_send_until(stop, proxy_url, org, statuses))
    await asyncio.sleep(1.5)
    await asyncio.to_thread(migrations.upgrade, url, extra_versions=[NEXT_RELEASE_EXPAND])
    assert await migrations.current_revision(url) == NEXT_REVISION
    await asyncio.sleep(2.0)
    stop.set()
    await sender

    assert len(statuses) >= 3 * REQUESTS_PER_S
    assert set(statuses) == {200}
    rows, ids = await _stored(url, org, len(statuses), timeout_s=30)
    assert (rows, ids) == (len(statuses), len(statuses))
    assert proxy.poll() is None and consumer.poll() is None

    # A process of this release started now accepts the newer schema, says so, serves.
    second_url, second = await processes.proxy("old-release-2")
    async with aiohttp.ClientSession() as session:
        assert await _chat(session, second_url, org) == 200
    code, stderr = await processes.stop(second)
    assert code == 0, stderr
    assert f"WARNING proxy.app the database schema {NEXT_REVISION} {COMPATIBLE}" in stderr

    aggregate = await asyncio.to_thread(run_lectr, "scheduler", "--run-once", "aggregate", env=env)
    assert aggregate.returncode == 0, aggregate.stderr

    for process in (proxy, consumer):
        code, stderr = await processes.stop(process)
        assert code == 0, stderr


async def test_a_proxy_refuses_a_newer_schema_that_dropped_what_it_uses(
    env: dict[str, str], processes: Processes
) -> None:
    url = env["LECTR_DATABASE_URL"]
    await asyncio.to_thread(migrations.upgrade, url, extra_versions=[NEXT_RELEASE_CONTRACT])
    proxy = processes.start("proxy", LECTR_PROXY_PORT=str(free_port()))
    _, stderr = await asyncio.to_thread(proxy.communicate, timeout=30)
    assert proxy.returncode == 1, stderr
    assert (
        "this release of Lectr (schema 0006) is too old for the database schema 0007"
        in stderr.strip().splitlines()[-1]
    )
    assert "upgrade Lectr" in stderr
