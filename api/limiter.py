"""Failed sign-in attempts per client address, shared by every way of signing in.

One :class:`FailureLimiter` per app (``api.routes_table.LIMITER``): a wrong bearer token,
a wrong admin secret at ``POST /api/session`` and a forged session cookie all count in
it, so guessing the admin secret one way cannot go on once the other way is blocked.
The address is ``request.remote``; ``X-Forwarded-For`` is not trusted.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web

from api.errors import ApiError

FAILURES_PER_WINDOW = 10
WINDOW_S = 60.0
MAX_TRACKED_ADDRESSES = 10_000


class FailureLimiter:
    """Failed attempts per client address in fixed windows that start at an address's
    first failure. At most ``max_addresses`` are tracked: when full, windows that are
    over are dropped first, then the oldest, so memory stays bounded under a flood of
    addresses (at the price of forgetting the oldest counts)."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        limit: int = FAILURES_PER_WINDOW,
        window_s: float = WINDOW_S,
        max_addresses: int = MAX_TRACKED_ADDRESSES,
    ) -> None:
        self._clock = clock
        self._limit = limit
        self._window_s = window_s
        self._max_addresses = max_addresses
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def retry_after_s(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None when it may now."""
        window = self._windows.get(address)
        if window is None:
            return None
        started, failures = window
        left_s = started + self._window_s - self._clock()
        if left_s <= 0:
            del self._windows[address]
            return None
        return max(1, math.ceil(left_s)) if failures >= self._limit else None

    def fail(self, address: str) -> None:
        now = self._clock()
        started, failures = self._windows.get(address, (now, 0))
        if now - started >= self._window_s:
            started, failures = now, 0
        self._windows[address] = (started, failures + 1)
        self._windows.move_to_end(address)
        if len(self._windows) > self._max_addresses:
            self._evict(now)

    def _evict(self, now: float) -> None:
        for address in [a for a, (s, _) in self._windows.items() if now - s >= self._window_s]:
            del self._windows[address]
        while len(self._windows) > self._max_addresses:
            self._windows.popitem(last=False)


def too_many_attempts(limiter: FailureLimiter, request: web.Request) -> None:
    """Raises 429 ``too_many_attempts`` (with ``Retry-After``) while ``request``'s address
    is blocked."""
    wait_s = limiter.retry_after_s(client_address(request))
    if wait_s is not None:
        raise ApiError(
            "too_many_attempts",
            f"too many failed sign-in attempts; retry in {wait_s} s",
            headers={"Retry-After": str(wait_s)},
        )


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"
