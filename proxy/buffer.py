"""The bounded in-memory buffer between requests and the publisher.

:meth:`EventBuffer.put` never waits: when the buffer holds ``capacity`` events or
``capacity_bytes`` bytes, the new event is dropped and counted, and the request carries
on unaffected. Events the publisher has taken but the broker has not confirmed yet still
count against both bounds until :meth:`EventBuffer.done`, so the depth never reads above
the capacity and memory stays bounded however long an outage lasts.

An event's size is its estimated encoded size: a constant for its metadata plus its
token-counting text, encoded once here (orjson: well under a microsecond for a typical
prompt, a few for 200 KiB). Every event passes through :meth:`EventBuffer.put`, so the
text is capped here too (:func:`capped`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque

import orjson

from schema.events import RequestEvent, TokenText

# Estimated encoded size of an event without text (about 700 bytes measured).
EVENT_BYTES = 800
# Encoded size of a TokenText beyond its prompt and its completion's characters.
_TEXT_OVERHEAD = len(orjson.dumps(TokenText(prompt=None, completion="", truncated=True))) - 4


class EventBuffer:
    def __init__(self, capacity: int, capacity_bytes: int, text_cap_bytes: int) -> None:
        self.capacity = capacity
        self.capacity_bytes = capacity_bytes
        self.text_cap_bytes = text_cap_bytes
        self.dropped = 0
        # time.monotonic() of the last drop (0: never), for /health.
        self.last_drop_at = 0.0
        # Events (and their estimated size) not yet taken by the publisher.
        self._events: deque[tuple[RequestEvent, int]] = deque()
        # Events held, taken or not, and their bytes: what the bounds apply to.
        self._count = 0
        self._bytes = 0
        self._ready = asyncio.Event()

    def put(self, event: RequestEvent) -> bool:
        """Add ``event`` (its text capped); False (and counted) when the buffer is full."""
        if self._count >= self.capacity:
            return self._drop()
        size = EVENT_BYTES
        if event.text is not None:
            event, text_bytes = capped(event, self.text_cap_bytes)
            size += text_bytes
        if self._bytes + size > self.capacity_bytes:
            return self._drop()
        self._events.append((event, size))
        self._count += 1
        self._bytes += size
        self._ready.set()
        return True

    def _drop(self) -> bool:
        self.dropped += 1
        self.last_drop_at = time.monotonic()
        return False

    def __len__(self) -> int:
        """Events held: waiting, or taken by the publisher and not yet confirmed."""
        return self._count

    @property
    def bytes(self) -> int:
        """Estimated bytes of the events held."""
        return self._bytes

    @property
    def queued(self) -> int:
        """Events not yet taken by the publisher."""
        return len(self._events)

    async def wait(self) -> None:
        """Return once an event is waiting, or :meth:`wake` is called."""
        if not self._events:
            self._ready.clear()
            await self._ready.wait()

    def wake(self) -> None:
        """Make :meth:`wait` return even if nothing is waiting."""
        self._ready.set()

    def take(self, limit: int) -> list[tuple[RequestEvent, int]]:
        """Remove and return up to ``limit`` waiting events with their sizes, oldest
        first. They stay counted until :meth:`done`."""
        events = self._events
        return [events.popleft() for _ in range(min(limit, len(events)))]

    def done(self, count: int, size: int) -> None:
        """``count`` taken events of ``size`` bytes in all are gone (sent or dropped)."""
        self._count -= count
        self._bytes -= size


def capped(event: RequestEvent, cap: int) -> tuple[RequestEvent, int]:
    """``event`` with its token-counting text within ``cap`` encoded bytes, and the
    text's encoded size.

    Over the cap the completion is cut (``truncated``); when the prompt alone is over,
    or the text cannot be encoded, the text is dropped and the event marked
    ``uncounted`` (see :meth:`RequestEvent.uncounted`).
    """
    text = event.text
    assert text is not None
    try:
        size = len(orjson.dumps(text))
    except orjson.JSONEncodeError:
        return event.uncounted(), 0
    if size <= cap:
        return event, size
    room = cap - _TEXT_OVERHEAD - len(orjson.dumps(text.prompt))
    if room < 0:
        return event.uncounted(), 0
    cut = TokenText(text.prompt, _cut(text.completion, room), truncated=True)
    return dataclasses.replace(event, text=cut), len(orjson.dumps(cut))


def _cut(completion: str, room: int) -> str:
    """The longest start of ``completion`` whose JSON string content fits ``room`` bytes."""
    cut = completion[:room]  # a character takes at least one byte
    while (size := len(orjson.dumps(cut)) - 2) > room:
        cut = cut[: len(cut) * room // size]
    return cut
