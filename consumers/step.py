"""What flows between the consumer's steps, and the shape every step has.

A step is built with the ``next_step`` it hands its output to. ``submit`` gives it one
item and may wait (that wait is the backpressure: the consumer stops taking messages,
and the broker stops sending once ``prefetch`` messages are unacked). ``poll`` lets a
step act on time (a batch that is old enough). ``join`` finishes everything the step
holds, passes it on and joins the next step; the consumer calls it on shutdown.
``terminate`` drops what the step holds without acking it, when the consumer cannot
finish (the broker connection is gone, or the shutdown deadline passed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from schema.events import HealthSnapshot, RequestEvent

T_contra = TypeVar("T_contra", contravariant=True)


class Delivery(Protocol):
    """One broker message as the consumer reads and settles it (aio-pika's
    IncomingMessage). It is only ever acked: what cannot be stored is dead-lettered
    (sanitised, by the consumer) first."""

    body: bytes
    type: str | None
    message_id: str | None
    headers: Mapping[str, Any]

    async def ack(self, multiple: bool = False) -> None: ...


class Step(Protocol[T_contra]):
    async def submit(self, item: T_contra) -> None: ...

    async def poll(self) -> None: ...

    async def join(self) -> None: ...

    def terminate(self) -> None:
        """Drop everything held, unacked (the broker redelivers it), and stop at once."""

    @property
    def held(self) -> int:
        """Events this step and those after it hold and have not acked yet."""


class Passing:
    """For a step that holds nothing itself: time, shutdown and ``held`` go to the next."""

    next_step: Step

    @property
    def held(self) -> int:
        return self.next_step.held

    async def poll(self) -> None:
        await self.next_step.poll()

    async def join(self) -> None:
        await self.next_step.join()

    def terminate(self) -> None:
        self.next_step.terminate()


@dataclass
class DeadEvent:
    """An event that cannot be stored, with why. ``record`` is the event without its
    text, or for an event that did not even decode, its fields as they came (without
    ``text``); :mod:`consumers.dead` sanitises it again before it is published."""

    record: RequestEvent | dict[str, Any]
    reason: str


@dataclass
class Envelope:
    """A message's contents on their way through the chain."""

    delivery: Delivery
    events: list[RequestEvent] = field(default_factory=list)
    health: list[HealthSnapshot] = field(default_factory=list)
    # Events of this message that cannot be stored (invalid, or refused by Postgres):
    # the commit step dead-letters them, sanitised, before it acks the message.
    dead: list[DeadEvent] = field(default_factory=list)


@dataclass
class Batch:
    envelopes: list[Envelope]
    # Set by the insert step: how many of the events were new (the rest were stored before).
    inserted: int = 0

    @property
    def events(self) -> list[RequestEvent]:
        return [e for env in self.envelopes for e in env.events]

    @property
    def event_count(self) -> int:
        return sum(len(env.events) for env in self.envelopes)
