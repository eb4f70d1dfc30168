"""Per-organisation limits: requests per minute and concurrent streams.

Requests per minute use a token bucket that refills continuously (``rpm`` tokens a
minute, bursting to ``rpm``); concurrent streams are a plain count per organisation.
Both take the current time from an injectable clock.

:class:`Limits` is what a request checks. Without Redis it counts in this process's
memory (each instance alone). With Redis (:mod:`proxy.shared_limits`) the count is
shared by every proxy, and a check Redis does not answer in time falls back to this
process's own count, so a slow or absent Redis never fails or slows a request.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from proxy.shared_limits import Lease, SharedLimits

Clock = Callable[[], float]


class RateLimiter:
    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        # org id -> (tokens left, when counted)
        self._buckets: dict[uuid.UUID, tuple[float, float]] = {}

    def acquire(self, org_id: uuid.UUID, rpm: int | None) -> int:
        """Take one request from ``org_id``'s budget. Returns 0 when allowed, otherwise
        the whole seconds until one more request will be allowed (for Retry-After)."""
        if rpm is None:
            return 0
        now = self._clock()
        tokens, then = self._buckets.get(org_id, (float(rpm), now))
        tokens = min(float(rpm), tokens + (now - then) * rpm / 60.0)
        if tokens >= 1.0:
            self._buckets[org_id] = (tokens - 1.0, now)
            return 0
        self._buckets[org_id] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) * 60.0 / rpm))


class StreamLimiter:
    def __init__(self) -> None:
        self._open: dict[uuid.UUID, int] = {}

    def acquire(self, org_id: uuid.UUID, limit: int | None) -> bool:
        """Count one more open stream for ``org_id``; False when at ``limit`` already."""
        count = self._open.get(org_id, 0)
        if limit is not None and count >= limit:
            return False
        self._open[org_id] = count + 1
        return True

    def release(self, org_id: uuid.UUID) -> None:
        count = self._open.get(org_id, 0) - 1
        if count > 0:
            self._open[org_id] = count
        else:
            self._open.pop(org_id, None)

    def open_streams(self, org_id: uuid.UUID) -> int:
        return self._open.get(org_id, 0)


@dataclass(frozen=True)
class StreamSlot:
    """An open stream's place in its organisation's count: a Redis lease, or local."""

    org_id: uuid.UUID
    lease: Lease | None = None


class Limits:
    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.rates = RateLimiter(clock)
        self.streams = StreamLimiter()
        # Set once Redis is connected (LECTR_REDIS_URL); None: counted here alone.
        self.shared: SharedLimits | None = None

    async def acquire_request(self, org_id: uuid.UUID, rpm: int | None) -> int:
        """0 when the request may go on, else the seconds for Retry-After."""
        if rpm is None:
            return 0
        if self.shared is not None:
            answer = await self.shared.acquire_request(org_id, rpm)
            if answer is not None:
                return answer
        return self.rates.acquire(org_id, rpm)

    async def acquire_stream(self, org_id: uuid.UUID, limit: int | None) -> StreamSlot | None:
        """A slot for one more open stream, or None when the organisation is at its limit.
        Release it with :meth:`release_stream` once the stream ends."""
        if limit is not None and self.shared is not None:
            answer = await self.shared.acquire_stream(org_id, limit)
            if isinstance(answer, Lease):
                return StreamSlot(org_id, answer)
            if answer is False:
                return None
        return StreamSlot(org_id) if self.streams.acquire(org_id, limit) else None

    def release_stream(self, slot: StreamSlot) -> None:
        if slot.lease is not None:
            if self.shared is not None:  # gone at shutdown: the lease expires by itself
                self.shared.release(slot.lease)
        else:
            self.streams.release(slot.org_id)
