"""Per-organisation limits counted across every proxy in Redis (``LECTR_REDIS_URL``).

Same semantics as :mod:`proxy.limits`, shared: requests per minute are a token bucket of
``rpm`` refilled at ``rpm`` a minute (a burst of ``rpm`` passes at once), and each open
stream holds a lease in a sorted set per organisation, scored by when it expires. A
living stream's lease is renewed every third of ``lease_s``; a proxy that crashes
stops renewing, so its slots free themselves within ``lease_s``.

Each check is one atomic Lua script run. Checks go to Redis in batches, one script
call each (one round trip, one command to parse), one batch out at a time: checks made
while a batch is out go together in the next, so under load the cost per request falls
well below one round trip.

The request path never waits on Redis for long: a check Redis has not answered within
``timeout_s`` (``LECTR_REDIS_TIMEOUT_MS``) answers ``None``, and the caller counts it
with its own per-instance limiter instead. The time counts from when the batch is sent,
and an answer is looked for ``GRACE_TURNS`` event-loop turns past it: a proxy busy at
full load takes milliseconds to come back to a socket, and that wait is its own, not
Redis's (counted from the check, nearly every check at full load would fall back,
just when limits matter). A check queued behind a batch that turns out late waits for
that lateness, then its own: twice the timeout at worst. A failed call, or
``TIMEOUTS_TO_FAIL`` batches in a row timing out (one late answer in a busy moment is
not an outage), marks Redis unavailable: checks then fall back at once, without
trying, while a background probe pings Redis every ``retry_s`` and marks it available
again when it answers. Every fallback is counted (``fallbacks``, by check), for
``/metrics`` and ``/health``.

Times are the proxies' wall clocks (``clock``, injectable), in milliseconds; the
scripts never move a bucket's time backwards, so a proxy whose clock is behind never
refills a bucket twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Check = Literal["rate", "streams"]

# ARGV[1]: now (ms); then one rpm per key. Returns, per key, 0 (allowed) or the whole
# seconds until one more request will be allowed.
RATE_SCRIPT = """
local now = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS do
    local rpm = tonumber(ARGV[i + 1])
    local state = redis.call('HMGET', KEYS[i], 'tokens', 'at')
    local tokens, at = tonumber(state[1]), tonumber(state[2])
    if tokens == nil or at == nil then
        tokens, at = rpm, now
    elseif now > at then
        tokens = math.min(rpm, tokens + (now - at) * rpm / 60000)
        at = now
    end
    local retry = 0
    if tokens >= 1 then
        tokens = tokens - 1
    else
        retry = math.max(1, math.ceil((1 - tokens) * 60 / rpm))
    end
    redis.call('HSET', KEYS[i], 'tokens', tostring(tokens), 'at', tostring(at))
    -- untouched for a minute, the bucket is full again: nothing worth keeping
    redis.call('PEXPIRE', KEYS[i], 61000)
    out[i] = retry
end
return out
"""

# ARGV[1]: now (ms), ARGV[2]: lease (ms); then per key: limit, lease id. Returns, per
# key, 1 when the lease was taken, 0 when the organisation is at its limit.
ACQUIRE_SCRIPT = """
local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS do
    local limit, member = tonumber(ARGV[2 * i + 1]), ARGV[2 * i + 2]
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    if redis.call('ZCARD', KEYS[i]) < limit then
        redis.call('ZADD', KEYS[i], now + lease, member)
        redis.call('PEXPIRE', KEYS[i], lease)
        out[i] = 1
    else
        out[i] = 0
    end
end
return out
"""

# ARGV[1]: now (ms), ARGV[2]: lease (ms); then one lease id per key. Pushes each
# lease's expiry on (never re-adds one that already expired or was released).
RENEW_SCRIPT = """
local expires, lease = tonumber(ARGV[1]) + tonumber(ARGV[2]), tonumber(ARGV[2])
for i = 1, #KEYS do
    if redis.call('ZADD', KEYS[i], 'XX', 'CH', expires, ARGV[i + 2]) == 1 then
        redis.call('PEXPIRE', KEYS[i], lease)
    end
end
return #KEYS
"""

# One lease id per key.
RELEASE_SCRIPT = """
for i = 1, #KEYS do
    redis.call('ZREM', KEYS[i], ARGV[i])
end
return #KEYS
"""

# Longest a script call may take before its connection is given up (callers stopped
# waiting long before, at timeout_s).
CALL_TIMEOUT_S = 2.0
# How long a probe of an unavailable Redis may take.
PROBE_TIMEOUT_S = 1.0
# Batches timing out in a row that mark Redis unavailable.
TIMEOUTS_TO_FAIL = 3
# Event-loop turns an answer is waited for once the timeout has passed: an answer
# already in the socket is read within them.
GRACE_TURNS = 3
# What a check's future holds when Redis did not answer in time.
LATE = object()


@dataclass(frozen=True)
class Lease:
    """One open stream's slot in Redis."""

    key: str
    member: str


def rate_key(org_id: uuid.UUID) -> str:
    return f"lectr:rpm:{org_id}"


def streams_key(org_id: uuid.UUID) -> str:
    return f"lectr:streams:{org_id}"


def connect(url: str) -> Redis:
    """A client that never retries by itself (a check has milliseconds, not retries)."""
    return Redis.from_url(
        url,
        socket_connect_timeout=PROBE_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
        max_connections=64,
    )


@dataclass
class _Batch:
    keys: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)  # every key's arguments, in order
    per_key: list[Sequence[Any]] = field(default_factory=list)
    futures: list[asyncio.Future[Any]] = field(default_factory=list)


class _Batcher:
    """Calls of one script, sent one batch at a time.

    ``submit`` queues one key and its arguments and returns a future for that key's
    answer. A batch goes out on the next loop turn when none is out; checks made while
    one is out wait for it (its answer, failure or lateness) and go together in the
    next, so the busier the proxy, the more checks share a call and the less each costs.
    The future gets ``None`` when the call failed, ``LATE`` when it was not answered in
    time; an answer that comes after its future was settled (late, or its request
    gone) is handed to ``orphan``.
    """

    def __init__(
        self,
        limits: SharedLimits,
        script: AsyncScript,
        head: Callable[[], Sequence[Any]],
        orphan: Callable[[str, Sequence[Any], Any], None] | None = None,
    ) -> None:
        self._limits = limits
        self._script = script
        self._head = head  # the script's leading ARGV, computed when the batch is sent
        self._orphan = orphan
        self._next = _Batch()
        self._out: _Batch | None = None  # sent, neither answered nor late yet

    def submit(self, key: str, *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        batch = self._next
        if not batch.keys and self._out is None:
            loop.call_soon(self._flush)
        future: asyncio.Future[Any] = loop.create_future()
        batch.keys.append(key)
        batch.args.extend(args)
        batch.per_key.append(args)
        batch.futures.append(future)
        return future

    def _flush(self) -> None:
        if self._out is not None or not self._next.keys:
            return
        self._out, self._next = self._next, _Batch()
        self._limits.spawn(self._send(self._out))

    def _settled(self, batch: _Batch) -> None:
        """``batch`` is answered, failed or late: the next one may go."""
        if self._out is batch:
            self._out = None
            self._flush()

    async def _send(self, batch: _Batch) -> None:
        loop = asyncio.get_running_loop()
        late = loop.call_later(self._limits.timeout_s, self._expire, batch, GRACE_TURNS)
        try:
            async with asyncio.timeout(CALL_TIMEOUT_S):
                answers = await self._script(keys=batch.keys, args=[*self._head(), *batch.args])
        except (RedisError, OSError, TimeoutError) as exc:
            self._limits.failed(exc)
            answers = [None] * len(batch.keys)
        else:
            self._limits.answered()
        finally:
            late.cancel()
        for key, key_args, future, answer in zip(
            batch.keys, batch.per_key, batch.futures, answers, strict=True
        ):
            if not future.done():
                future.set_result(answer)
            elif answer is not None and self._orphan is not None:
                self._orphan(key, key_args, answer)
        self._settled(batch)

    def _expire(self, batch: _Batch, turns: int) -> None:
        """The timeout has passed: after ``turns`` more loop turns, answer LATE."""
        if turns > 0:
            asyncio.get_running_loop().call_soon(self._expire, batch, turns - 1)
            return
        waiting = [future for future in batch.futures if not future.done()]
        for future in waiting:
            future.set_result(LATE)
        if waiting:
            self._limits.late()
        self._settled(batch)


class SharedLimits:
    def __init__(
        self,
        client: Redis,
        *,
        instance: str,
        timeout_s: float,
        lease_s: float,
        clock: Clock = time.time,
        retry_s: float = 0.5,
    ) -> None:
        self._client = client
        self.timeout_s = timeout_s
        self._lease_ms = round(lease_s * 1000)
        self._clock = clock
        self._retry_s = retry_s
        self._ids = (f"{instance}:{uuid.uuid4().hex[:8]}:{n}" for n in itertools.count())
        self._tasks: set[asyncio.Task[None]] = set()
        self._probe: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._leases: dict[str, str] = {}  # lease id -> its key, while its stream lives
        self._timeouts_in_a_row = 0
        self.available = False
        self.fallbacks: dict[Check, int] = {"rate": 0, "streams": 0}
        rate, acquire, renew, release = self._scripts = [
            client.register_script(source)
            for source in (RATE_SCRIPT, ACQUIRE_SCRIPT, RENEW_SCRIPT, RELEASE_SCRIPT)
        ]
        self._rate = _Batcher(self, rate, lambda: (self._now_ms(),))
        self._acquire = _Batcher(self, acquire, self._lease_head, self._orphaned_lease)
        self._renew = renew
        self._release = _Batcher(self, release, tuple)

    def _now_ms(self) -> int:
        return round(self._clock() * 1000)

    def _lease_head(self) -> tuple[int, int]:
        return self._now_ms(), self._lease_ms

    async def start(self, wait_s: float) -> None:
        """Connect and load the scripts, waiting up to ``wait_s``. When Redis does not
        answer, the proxy serves anyway (every check falls back) and keeps trying."""
        self._renewer = asyncio.create_task(self._renew_forever())
        try:
            async with asyncio.timeout(wait_s):
                await self._load()
        except (RedisError, OSError, TimeoutError) as exc:
            self.failed(exc)
            return
        self.available = True

    async def _load(self) -> None:
        await self._client.ping()
        for script in self._scripts:
            await self._client.script_load(script.script)

    async def close(self) -> None:
        for task in (self._probe, self._renewer, *self._tasks):
            if task is not None:
                task.cancel()
        for task in (self._probe, self._renewer, *self._tasks):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._client.aclose()

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def failed(self, exc: BaseException) -> None:
        """Redis failed or was too slow: fall back at once until a probe gets an answer."""
        if not self.available and self._probe is not None:
            return
        self.available = False
        self._timeouts_in_a_row = 0
        log.warning(
            "Redis unavailable (%s): limits are counted by this proxy alone until it answers",
            type(exc).__name__ if isinstance(exc, TimeoutError) else exc,
        )
        self._probe = asyncio.get_running_loop().create_task(self._wait_for_redis())

    async def _wait_for_redis(self) -> None:
        while True:
            await asyncio.sleep(self._retry_s)
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    await self._load()
            except (RedisError, OSError, TimeoutError):
                continue
            self.available = True
            self._probe = None
            log.info("Redis answers again: limits are shared across proxies")
            return

    def answered(self) -> None:
        self._timeouts_in_a_row = 0

    def late(self) -> None:
        """A batch was not answered in time."""
        self._timeouts_in_a_row += 1
        if self._timeouts_in_a_row >= TIMEOUTS_TO_FAIL:
            self.failed(TimeoutError())

    async def _answer(self, check: Check, future: asyncio.Future[Any]) -> Any:
        answer = await future
        if answer is None or answer is LATE:
            self.fallbacks[check] += 1
            return None
        return answer

    async def acquire_request(self, org_id: uuid.UUID, rpm: int) -> int | None:
        """0 when allowed, else the seconds until one more request is (Retry-After);
        None when Redis did not answer in time (count it locally instead)."""
        if not self.available:
            self.fallbacks["rate"] += 1
            return None
        answer = await self._answer("rate", self._rate.submit(rate_key(org_id), rpm))
        return None if answer is None else int(answer)

    async def acquire_stream(self, org_id: uuid.UUID, limit: int) -> Lease | bool | None:
        """A lease when a stream may open, False at the limit, None when Redis did not
        answer in time (count it locally instead)."""
        if not self.available:
            self.fallbacks["streams"] += 1
            return None
        lease = Lease(streams_key(org_id), next(self._ids))
        answer = await self._answer("streams", self._acquire.submit(lease.key, limit, lease.member))
        if answer is None:
            return None
        if not answer:
            return False
        self._leases[lease.member] = lease.key
        return lease

    def release(self, lease: Lease) -> None:
        """Free a stream's slot, without waiting (an unsent release expires anyway)."""
        self._leases.pop(lease.member, None)
        if self.available:
            self._release.submit(lease.key, lease.member)

    def _orphaned_lease(self, key: str, args: Sequence[Any], answer: Any) -> None:
        """A lease granted after its request stopped waiting (and counted locally)."""
        if answer:
            self._release.submit(key, args[1])

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._lease_ms / 3000)
            if not self.available or not self._leases:
                continue
            members, keys = list(self._leases), list(self._leases.values())
            try:
                async with asyncio.timeout(CALL_TIMEOUT_S):
                    await self._renew(keys=keys, args=[self._now_ms(), self._lease_ms, *members])
            except (RedisError, OSError, TimeoutError) as exc:
                self.failed(exc)

    def open_leases(self) -> int:
        return len(self._leases)
