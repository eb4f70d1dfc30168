"""The bounded in-memory buffer between requests and the publisher.

:meth:`EventBuffer.put` never waits: when the buffer holds ``capacity`` events the new
one is dropped and counted, and the request carries on unaffected.
"""

from __future__ import annotations

import asyncio
from collections import deque

from schema.events import RequestEvent


class EventBuffer:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.dropped = 0
        self._events: deque[RequestEvent] = deque()
        self._ready = asyncio.Event()

    def put(self, event: RequestEvent) -> bool:
        """Add ``event``; False (and counted) when the buffer is full."""
        if len(self._events) >= self.capacity:
            self.dropped += 1
            return False
        self._events.append(event)
        self._ready.set()
        return True

    def __len__(self) -> int:
        return len(self._events)

    async def wait(self) -> None:
        """Return once an event is buffered, or :meth:`wake` is called."""
        if not self._events:
            self._ready.clear()
            await self._ready.wait()

    def wake(self) -> None:
        """Make :meth:`wait` return even if nothing is buffered."""
        self._ready.set()

    def take(self, limit: int) -> list[RequestEvent]:
        """Remove and return up to ``limit`` events, oldest first."""
        events = self._events
        count = min(limit, len(events))
        return [events.popleft() for _ in range(count)]
