"""Limits shared through a real Redis: two SharedLimits, or two proxies, share counts.

Checks wait up to 250 ms here, not the 5 ms default, except where a timeout is the
point: on a busy two-core test machine Redis itself may wait longer than 5 ms for a core.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import aiohttp
import asyncpg
import orjson
import pytest

from lectr.orgs import IssuedKey
from proxy.limits import Limits
from proxy.shared_limits import TIMEOUTS_TO_FAIL, Lease, SharedLimits, connect
from tests.proxy.conftest import CHAT, RunningProxy, lectr_headers
from tests.proxy.test_errors import assert_lectr_error, post
from tests.support.forwarder import TcpForwarder
from tests.support.providers import FakeProviders, slow_stream


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def make_limits(redis_url: str) -> AsyncIterator[Callable[..., object]]:
    made: list[SharedLimits] = []

    async def make(
        url: str = redis_url,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 0.25,
        lease_s: float = 30.0,
        retry_s: float = 0.1,
    ) -> SharedLimits:
        shared = SharedLimits(
            connect(url),
            instance=f"test-{len(made)}",
            timeout_s=timeout_s,
            lease_s=lease_s,
            clock=clock,
            retry_s=retry_s,
        )
        await shared.start(2.0)
        made.append(shared)
        return shared

    yield make
    for shared in made:
        await shared.close()


async def test_a_burst_of_rpm_passes_at_once_across_proxies_then_refills(make_limits) -> None:
    clock = Clock()
    first, second = await make_limits(clock=clock), await make_limits(clock=clock)
    org = uuid.uuid4()
    answers = await asyncio.gather(
        *(proxy.acquire_request(org, 10) for proxy in (first, second) * 6)
    )
    assert sorted(answers) == [0] * 10 + [6, 6]  # 10 a minute: one more in 6 s
    clock.now += 6.0
    assert await second.acquire_request(org, 10) == 0
    assert await first.acquire_request(org, 10) == 6
    assert first.fallbacks == second.fallbacks == {"rate": 0, "streams": 0}


async def test_checks_made_while_a_batch_is_out_share_the_next_call(make_limits) -> None:
    shared = await make_limits()
    script = shared._rate._script
    calls: list[int] = []
    sent = asyncio.Event()

    async def counted(*, keys: list[str], args: list[object]) -> object:
        calls.append(len(keys))
        sent.set()
        return await script(keys=keys, args=args)

    shared._rate._script = counted
    org = uuid.uuid4()
    first = asyncio.ensure_future(shared.acquire_request(org, 1000))
    await sent.wait()  # the first check's batch is out
    rest = await asyncio.gather(*(shared.acquire_request(org, 1000) for _ in range(99)))
    assert [await first, *rest] == [0] * 100
    assert calls == [1, 99]


async def test_a_clock_behind_never_refills_twice(make_limits) -> None:
    ahead, behind = Clock(), Clock()
    behind.now -= 30.0
    first, second = await make_limits(clock=ahead), await make_limits(clock=behind)
    org = uuid.uuid4()
    for _ in range(2):
        assert await first.acquire_request(org, 2) == 0
    assert await second.acquire_request(org, 2) > 0  # its 30 s lag adds no tokens


async def test_stream_slots_are_shared_and_released(make_limits) -> None:
    first, second = await make_limits(), await make_limits()
    org = uuid.uuid4()
    lease = await first.acquire_stream(org, 2)
    assert isinstance(lease, Lease)
    assert isinstance(await second.acquire_stream(org, 2), Lease)
    assert await first.acquire_stream(org, 2) is False
    first.release(lease)
    await asyncio.sleep(0.05)  # the release goes out without the stream waiting for it
    assert isinstance(await second.acquire_stream(org, 2), Lease)


async def test_a_crashed_proxys_slots_free_themselves_after_the_lease(make_limits) -> None:
    clock = Clock()
    crashed, alive = await make_limits(clock=clock), await make_limits(clock=clock)
    org = uuid.uuid4()
    assert isinstance(await crashed.acquire_stream(org, 1), Lease)
    await crashed.close()  # never released, never renewed again
    assert await alive.acquire_stream(org, 1) is False
    clock.now += 31.0
    assert isinstance(await alive.acquire_stream(org, 1), Lease)


async def test_a_living_stream_keeps_its_slot_past_the_lease(make_limits) -> None:
    holder, other = await make_limits(lease_s=0.3), await make_limits(lease_s=0.3)
    org = uuid.uuid4()
    assert isinstance(await holder.acquire_stream(org, 1), Lease)
    await asyncio.sleep(1.0)  # three leases long: renewed every 0.1 s
    assert await other.acquire_stream(org, 1) is False
    assert holder.open_leases() == 1


async def test_redis_cut_falls_back_at_once_counts_and_comes_back(
    make_limits, redis_forwarder: TcpForwarder, redis_url: str
) -> None:
    shared = await make_limits(url=redis_forwarder.url_for(redis_url))
    org = uuid.uuid4()
    assert await shared.acquire_request(org, 100) == 0
    redis_forwarder.cut()
    assert await shared.acquire_request(org, 100) is None  # the failing call itself
    assert not shared.available
    started = time.perf_counter()
    for _ in range(50):
        assert await shared.acquire_request(org, 100) is None
        assert await shared.acquire_stream(org, 5) is None
    assert time.perf_counter() - started < 0.05  # no attempt while it is down
    assert shared.fallbacks == {"rate": 51, "streams": 50}
    redis_forwarder.restore()
    for _ in range(100):
        if shared.available:
            break
        await asyncio.sleep(0.05)
    assert shared.available
    assert await shared.acquire_request(org, 100) == 0


async def test_a_hung_redis_costs_a_request_the_timeout_at_most(
    make_limits, redis_forwarder: TcpForwarder, redis_url: str
) -> None:
    shared = await make_limits(url=redis_forwarder.url_for(redis_url), timeout_s=0.005)
    org = uuid.uuid4()
    assert await shared.acquire_request(org, 100) == 0
    redis_forwarder.stall()
    for _ in range(TIMEOUTS_TO_FAIL):
        assert shared.available  # one late answer is not an outage
        started = time.perf_counter()
        assert await shared.acquire_request(org, 100) is None
        assert time.perf_counter() - started < 0.05
    assert not shared.available
    assert shared.fallbacks["rate"] == TIMEOUTS_TO_FAIL
    started = time.perf_counter()
    assert await shared.acquire_request(org, 100) is None
    assert time.perf_counter() - started < 0.001  # no more waiting while it is down
    redis_forwarder.restore()


async def test_limits_count_locally_when_redis_does_not_answer(
    make_limits, redis_forwarder: TcpForwarder, redis_url: str
) -> None:
    limits = Limits()
    limits.shared = await make_limits(url=redis_forwarder.url_for(redis_url))
    org = uuid.uuid4()
    redis_forwarder.cut()
    # Per-instance semantics while Redis is away: a burst of 3, then Retry-After.
    assert [await limits.acquire_request(org, 3) for _ in range(4)] == [0, 0, 0, 20]
    slot = await limits.acquire_stream(org, 1)
    assert slot is not None and slot.lease is None
    assert await limits.acquire_stream(org, 1) is None
    limits.release_stream(slot)
    assert await limits.acquire_stream(org, 1) is not None


async def test_without_limits_redis_is_never_asked(make_limits) -> None:
    limits = Limits()
    limits.shared = shared = await make_limits()
    await shared.close()  # would fail any call
    org = uuid.uuid4()
    assert await limits.acquire_request(org, None) == 0
    assert await limits.acquire_stream(org, None) is not None
    assert shared.fallbacks == {"rate": 0, "streams": 0}


# -- proxies serving requests -------------------------------------------------------


async def _limit(db: asyncpg.Connection, org: IssuedKey, **columns: int) -> None:
    for column, value in columns.items():
        await db.execute(f"UPDATE organizations SET {column} = $1 WHERE id = $2", value, org.org_id)


async def _metric(proxy: RunningProxy, sample: str) -> float:
    _, text = await proxy.get("/metrics")
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{sample} not in /metrics:\n{text}")


async def test_two_proxies_share_one_rate_limit(
    db: asyncpg.Connection, org: IssuedKey, fake: FakeProviders, start_proxy, redis_url: str
) -> None:
    await _limit(db, org, rate_limit_rpm=4)
    first, second = (
        await start_proxy(redis_url=redis_url, redis_timeout_ms=250),
        await start_proxy(redis_url=redis_url, redis_timeout_ms=250),
    )
    answers = [await post(proxy, headers=lectr_headers(org)) for proxy in (first, second) * 3]
    assert [status for status, _, _ in answers] == [200] * 4 + [429] * 2
    status, body, headers = answers[-1]
    assert_lectr_error(status, body, 429, "rate_limit_exceeded")
    assert int(headers["Retry-After"]) == 15  # 4 a minute: one more in 15 s
    assert len(fake.received) == 4
    assert await _metric(first, 'lectr_proxy_redis_fallbacks_total{check="rate"}') == 0


async def test_two_proxies_share_one_stream_limit(
    db: asyncpg.Connection, org: IssuedKey, fake: FakeProviders, start_proxy, redis_url: str
) -> None:
    await _limit(db, org, max_concurrent_streams=1)
    first, second = (
        await start_proxy(redis_url=redis_url, redis_timeout_ms=250),
        await start_proxy(redis_url=redis_url, redis_timeout_ms=250),
    )
    fake.respond_with(slow_stream)
    stream = orjson.dumps({**CHAT, "stream": True})
    headers = lectr_headers(org, **{"Content-Type": "application/json"})
    async with aiohttp.ClientSession() as session:
        opened = await session.post(
            f"{first.url}/v1/chat/completions", data=stream, headers=headers
        )
        assert opened.status == 200
        status, body, _ = await post(second, headers=lectr_headers(org), data=stream)
        assert_lectr_error(status, body, 429, "concurrent_streams_exceeded")
        assert (await post(second, headers=lectr_headers(org)))[0] == 200  # not a stream
        await opened.read()
        opened.release()
    for _ in range(50):  # the slot is released just after the stream ends
        status, _, _ = await post(second, headers=lectr_headers(org), data=stream)
        if status == 200:
            break
        await asyncio.sleep(0.02)
    assert status == 200


async def test_redis_down_requests_served_fallbacks_in_metrics_and_health(
    db: asyncpg.Connection,
    org: IssuedKey,
    start_proxy,
    redis_url: str,
    redis_forwarder: TcpForwarder,
) -> None:
    await _limit(db, org, rate_limit_rpm=1000)
    proxy = await start_proxy(redis_url=redis_forwarder.url_for(redis_url), redis_timeout_ms=250)
    assert (await proxy.get("/health"))[1]["redis"]["status"] == "ok"
    redis_forwarder.cut()
    for _ in range(5):
        assert (await post(proxy, headers=lectr_headers(org)))[0] == 200
    status, health = await proxy.get("/health")
    assert status == 200
    assert health["status"] == "degraded"
    assert "redis_unavailable" in health["degraded"]
    assert health["redis"]["status"] == "unavailable"
    assert health["redis"]["fallbacks"] == 5
    assert await _metric(proxy, 'lectr_proxy_redis_fallbacks_total{check="rate"}') == 5
    assert await _metric(proxy, "lectr_proxy_redis_available") == 0
    redis_forwarder.restore()
    for _ in range(60):
        if (await proxy.get("/health"))[1]["status"] == "ok":
            break
        await asyncio.sleep(0.05)
    assert (await proxy.get("/health"))[1]["redis"]["status"] == "ok"
    assert (await post(proxy, headers=lectr_headers(org)))[0] == 200
    assert await _metric(proxy, 'lectr_proxy_redis_fallbacks_total{check="rate"}') == 5


async def test_a_proxy_starts_and_serves_while_redis_is_down(
    org: IssuedKey, start_proxy, redis_url: str, redis_forwarder: TcpForwarder
) -> None:
    redis_forwarder.cut()
    proxy = await start_proxy(redis_url=redis_forwarder.url_for(redis_url), redis_timeout_ms=250)
    assert (await post(proxy, headers=lectr_headers(org)))[0] == 200
    assert (await proxy.get("/health"))[1]["redis"]["status"] == "unavailable"


async def test_without_redis_health_says_so(proxy: RunningProxy) -> None:
    _, health = await proxy.get("/health")
    assert health["redis"] is None
    _, text = await proxy.get("/metrics")
    assert "lectr_proxy_redis" not in text
