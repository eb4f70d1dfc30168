"""Step 4: gather envelopes into a batch of ``batch_size`` events or ``flush_interval_s``.

The batch is handed on when it holds at least ``batch_size`` events (one message may
carry more; it is never split, since a message is acked whole) or when its first
envelope has waited ``flush_interval_s`` on the given clock, checked by ``poll``.
Envelopes without events (health snapshots, messages whose events were all invalid)
ride along so they are acked with the rest. The step holds one batch at most: handing
on a full one waits while every writer of the next step is busy.
"""

from __future__ import annotations

from consumers.clock import Clock
from consumers.step import Batch, Envelope, Step


class BatchStep:
    def __init__(
        self, next_step: Step[Batch], clock: Clock, batch_size: int, flush_interval_s: float
    ) -> None:
        self.next_step = next_step
        self.clock = clock
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._envelopes: list[Envelope] = []
        self._events = 0
        self._started_at = 0.0

    @property
    def held(self) -> int:
        return self._events + self.next_step.held

    async def submit(self, envelope: Envelope) -> None:
        if not self._envelopes:
            self._started_at = self.clock.monotonic()
        self._envelopes.append(envelope)
        self._events += len(envelope.events)
        if self._events >= self.batch_size:
            await self._flush()

    async def poll(self) -> None:
        if self._envelopes and self.clock.monotonic() - self._started_at >= self.flush_interval_s:
            await self._flush()
        await self.next_step.poll()

    async def join(self) -> None:
        if self._envelopes:
            await self._flush()
        await self.next_step.join()

    def terminate(self) -> None:
        self._envelopes, self._events = [], 0
        self.next_step.terminate()

    async def _flush(self) -> None:
        batch = Batch(self._envelopes)
        self._envelopes, self._events = [], 0
        await self.next_step.submit(batch)
