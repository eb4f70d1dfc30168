"""Per-organisation limits, kept in this process's memory (each instance counts alone).

Requests per minute use a token bucket that refills continuously (``rpm`` tokens a
minute, bursting to ``rpm``); concurrent streams are a plain count per organisation.
Both take the current time from an injectable clock.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable

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
