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

from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from schema.events import HealthSnapshot, RequestEvent

T_contra = TypeVar("T_contra", contravariant=True)


class Delivery(Protocol):
    """One broker message as the consumer settles it (aio-pika's IncomingMessage)."""

    async def ack(self, multiple: bool = False) -> None: ...

    async def reject(self, requeue: bool = False) -> None: ...


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
class Envelope:
    """A message's contents on their way through the chain."""

    delivery: Delivery
    events: list[RequestEvent] = field(default_factory=list)
    health: list[HealthSnapshot] = field(default_factory=list)
    # Set by the insert step when the message's own rows cannot be written at all.
    failed: str | None = None


@dataclass
class Batch:
    envelopes: list[Envelope]
    # Set by the insert step: how many of the events were new (the rest were stored before).
    inserted: int = 0

    @property
    def events(self) -> list[RequestEvent]:
        return [e for env in self.envelopes if env.failed is None for e in env.events]

    @property
    def event_count(self) -> int:
        return sum(len(env.events) for env in self.envelopes)
