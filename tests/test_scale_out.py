"""Many proxies, consumers, an api and a scheduler on one database, broker and Redis.

Three proxies share limits through Redis (one runs ``--workers 2``), two more count
alone; two consumers share the ingest queue. The 1 s deadlines are measured from the
api's answer, once every process is healthy.

Redis checks wait up to 250 ms here instead of the 5 ms default: eleven processes
share this machine's two cores with the test, so Redis itself may wait longer than
5 ms for a core, and a check answered late would be counted per proxy.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import pytest

from lectr.broker import BrokerNames
from lectr.db import asyncpg_dsn
from tests.conftest import broker_topology
from tests.support.cli import LECTR
from tests.support.forwarder import TcpForwarder
from tests.support.processes import free_port, wait_for_health
from tests.support.providers import FakeProviders

ADMIN = "scale-out-admin-secret-0123456789"
PROVIDER_KEY = "sk-test-provider-key-0123456789"
REQUESTS = 240
RPM = 30
FALLBACKS = "lectr_proxy_redis_fallbacks_total"


@dataclass
class Stack:
    fake: FakeProviders
    api: str
    shared: list[str]  # proxies sharing limits through Redis
    alone: list[str]  # proxies counting limits alone
    workers: str  # the shared proxy running --workers 2
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    async def call(self, method: str, path: str, body: object = None) -> dict:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, f"{self.api}{path}", json=body, headers=headers) as r,
        ):
            assert r.status < 300, await r.text()
            return await r.json()


@pytest.fixture
def scale_names(amqp_url: str) -> Iterator[BrokerNames]:
    yield from broker_topology(amqp_url, f"lectr_scale_{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def stack(
    lectr_env: dict[str, str],
    fake: FakeProviders,
    scale_names: BrokerNames,
    redis_url: str,
    redis_forwarder: TcpForwarder,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    base = {
        **lectr_env,
        "LECTR_BROKER_PREFIX": scale_names.prefix,
        "LECTR_ADMIN_SECRET": ADMIN,
        **fake.env(),
    }
    shared_env = {
        **base,
        "LECTR_REDIS_URL": redis_forwarder.url_for(redis_url),
        "LECTR_REDIS_TIMEOUT_MS": "250",
    }
    ports = {name: free_port() for name in ("api", "scheduler", "a", "b", "c", "d", "e")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    started: list[tuple[str, subprocess.Popen[str]]] = []

    def start(name: str, args: list[str], env: dict[str, str], **extra: str) -> None:
        """``lectr ARGS``, its output in a file (a pipe nobody reads would fill up)."""
        spool = str(tmp_path / f"spool-{name}")
        with (tmp_path / f"{name}.log").open("w") as log:
            process = subprocess.Popen(
                [*LECTR, *args],
                env={**env, "LECTR_PROXY_SPOOL_DIR": spool, **extra},
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        started.append((name, process))

    start("api", ["api"], base, LECTR_API_PORT=str(ports["api"]))
    start(
        "scheduler",
        ["scheduler"],
        base,
        LECTR_SCHEDULER_PORT=str(ports["scheduler"]),
        LECTR_SCHEDULER_AGGREGATE_INTERVAL_S="2",
    )
    for index in (1, 2):
        start(f"consumer-{index}", ["consumer"], base, LECTR_CONSUMER_FLUSH_INTERVAL_S="0.2")
    for name in ("a", "b"):
        start(name, ["proxy"], shared_env, LECTR_PROXY_PORT=str(ports[name]))
    start("c", ["proxy", "--workers", "2"], shared_env, LECTR_PROXY_PORT=str(ports["c"]))
    for name in ("d", "e"):
        start(name, ["proxy"], base, LECTR_PROXY_PORT=str(ports[name]))
    running = Stack(
        fake,
        api=urls["api"],
        shared=[urls["a"], urls["b"], urls["c"]],
        alone=[urls["d"], urls["e"]],
        workers=urls["c"],
        processes=[process for _, process in started],
    )
    try:
        waits = {name: urls.get(name) for name, _ in started}
        await asyncio.gather(
            *(
                wait_for_health(url if name != "api" else f"{url}/api", process, 60)
                for (name, process) in started
                if (url := waits[name]) is not None
            )
        )
        yield running
    finally:
        for _, process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in started:
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                pytest.fail(f"{name} did not stop within 40 s of SIGTERM")
            log = (tmp_path / f"{name}.log").read_text()
            assert "Traceback" not in log, f"{name}:\n{log}"


async def _send(session: aiohttp.ClientSession, proxy: str, key: str) -> tuple[int, str]:
    """One chat request on a new connection (so a --workers proxy may give it to
    either worker); its status and a marker the simulated provider saw it with."""
    marker = uuid.uuid4().hex
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "user": marker}
    headers = {"X-Lectr-Key": key, "Authorization": f"Bearer {PROVIDER_KEY}"}
    async with session.post(f"{proxy}/v1/chat/completions", json=body, headers=headers) as r:
        await r.read()
        return r.status, marker


def _models(fake: FakeProviders) -> dict[str, str]:
    """The model each marked request reached the provider with."""
    seen = {}
    for received in fake.received:
        if received.body:
            body = orjson.loads(received.body)
            if isinstance(body, dict) and "user" in body:
                seen[body["user"]] = body.get("model")
    return seen


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


async def _every_proxy(stack: Stack, key: str) -> list[tuple[int, str]]:
    """Six requests to the --workers proxy, two to each other proxy, at once."""
    targets = [*stack.shared, *stack.alone, stack.workers, stack.workers]
    targets += targets
    async with _session() as session:
        return await asyncio.gather(*(_send(session, url, key) for url in targets))


async def _until(deadline_s: float, check) -> float:
    """Seconds until ``check()`` holds (polled), failing past ``deadline_s``."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < deadline_s, "not within the deadline"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def _metric_sum(url: str, name: str) -> float:
    async with _session() as session, session.get(f"{url}/metrics") as response:
        text = await response.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


@pytest.mark.timeout(120)
async def test_many_proxies_and_consumers_share_one_truth(
    stack: Stack, database_url: str, redis_forwarder: TcpForwarder
) -> None:
    org = await stack.call("POST", "/api/orgs", {"name": f"scale-{uuid.uuid4().hex[:8]}"})
    org_id, key = org["id"], org["key"]
    created = await stack.call("POST", f"/api/orgs/{org_id}/keys", {"name": "spare"})
    spare, spare_id = created["key"], created["id"]
    proxies = [*stack.shared, *stack.alone]
    served = 0  # requests answered 200 for the org: each must be stored once

    async def every_proxy_knows_both_keys() -> bool:
        nonlocal served
        answers = await asyncio.gather(
            *(_every_proxy(stack, k) for k in (key, spare)), return_exceptions=False
        )
        statuses = [status for batch in answers for status, _ in batch]
        served += statuses.count(200)
        return all(status == 200 for status in statuses)

    await _until(5.0, every_proxy_knows_both_keys)

    # Traffic to every proxy: every event stored once, and counted once in the rollups.
    async with _session() as session:
        answers = await asyncio.gather(
            *(_send(session, proxies[i % len(proxies)], key) for i in range(REQUESTS))
        )
    assert [status for status, _ in answers] == [200] * REQUESTS
    served += REQUESTS
    org_uuid = uuid.UUID(org_id)
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        stored = "SELECT count(*), count(DISTINCT id) FROM request_logs WHERE org_id = $1"

        async def all_stored() -> bool:
            return (await conn.fetchrow(stored, org_uuid))[0] >= served

        await _until(30.0, all_stored)
        await asyncio.sleep(1.0)  # a duplicate, or a late rollup, would land by now
        assert tuple(await conn.fetchrow(stored, org_uuid)) == (served, served)
        rollups = await conn.fetchval(
            "SELECT sum(request_count) FROM request_rollups WHERE org_id = $1", org_uuid
        )
        assert rollups == served
        # The scheduler, beside them all, summarised the org from those rollups.
        summaries = "SELECT count(*) FROM dashboard_summaries WHERE org_id = $1"

        async def summarised() -> bool:
            return await conn.fetchval(summaries, org_uuid) > 0

        await _until(10.0, summarised)
    finally:
        await conn.close()

    # A rule made through the api: every proxy (both workers too) routes by it in 1 s.
    await stack.call(
        "POST",
        f"/api/orgs/{org_id}/rules",
        {"name": "smaller", "match_model": "gpt-4o-mini", "target_model": "gpt-4.1-nano"},
    )
    await _after_one_second(stack, key, lambda status, model: model == "gpt-4.1-nano")

    # A key revoked through the api: every proxy refuses it in 1 s.
    await stack.call("DELETE", f"/api/orgs/{org_id}/keys/{spare_id}")
    await _after_one_second(stack, spare, lambda status, model: status == 401)

    # RPM requests a minute: across the Redis proxies within a few, RPM per proxy alone.
    await stack.call("PATCH", f"/api/orgs/{org_id}", {"rate_limit_rpm": RPM})
    await asyncio.sleep(1.0)
    async with _session() as session:
        shared = await asyncio.gather(
            *(_send(session, stack.shared[i % 3], key) for i in range(3 * RPM))
        )
        alone = await asyncio.gather(
            *(_send(session, url, key) for url in stack.alone for _ in range(RPM + 10))
        )
    allowed = [status for status, _ in shared].count(200)
    assert RPM <= allowed <= RPM + 2, f"{allowed} of {3 * RPM} allowed at {RPM} a minute"
    assert {status for status, _ in shared} == {200, 429}
    # Each proxy alone: a burst of RPM, plus what refilled while the burst went on.
    assert 2 * RPM <= [status for status, _ in alone].count(200) <= 2 * RPM + 2
    for url in stack.shared:
        assert await _metric_sum(url, FALLBACKS) == 0

    # Redis gone: requests still served, each check counted alone and counted as such.
    await stack.call("PATCH", f"/api/orgs/{org_id}", {"rate_limit_rpm": 100_000})
    await asyncio.sleep(1.0)
    redis_forwarder.cut()
    async with _session() as session:
        answers = await asyncio.gather(
            *(_send(session, url, key) for url in stack.shared for _ in range(10))
        )
    assert [status for status, _ in answers] == [200] * 30
    fallbacks = [
        await _metric_sum(url, "lectr_proxy_redis_fallbacks_total") for url in stack.shared
    ]
    assert sum(fallbacks) == 30 and all(fallbacks), fallbacks
    async with _session() as session, session.get(f"{stack.shared[0]}/health") as response:
        health = await response.json()
    assert health["redis"]["status"] == "unavailable"
    assert "redis_unavailable" in health["degraded"]


async def _after_one_second(stack: Stack, key: str, applied) -> None:
    """From the api's answer, poll until every proxy applies the change (the time it
    took is printed), then require it of every request sent 1 s after the answer."""
    started = time.monotonic()

    async def everywhere() -> bool:
        answers = await _every_proxy(stack, key)
        models = _models(stack.fake)
        return all(applied(status, models.get(marker)) for status, marker in answers)

    took = await _until(1.0, everywhere)
    print(f"applied by every proxy in {took:.3f} s")
    await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    answers = await _every_proxy(stack, key)
    models = _models(stack.fake)
    assert all(applied(status, models.get(marker)) for status, marker in answers), answers
