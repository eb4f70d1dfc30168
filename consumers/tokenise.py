"""Step 2: count the tokens a provider did not report, in threads, then drop the text.

Counting runs in a thread pool so a large prompt never stalls the event loop (which
keeps receiving messages meanwhile). Envelopes leave in the order they came. At most
``max_pending`` envelopes are being counted at once; ``submit`` waits for the oldest
when that many are, which is this step's backpressure.

Every event leaves this step sanitised: its transient text is gone. An event the proxy
sent without its text (``token_source = "uncounted"``: spooled at shutdown, or over its
byte cap) keeps that mark and is not counted; so does one whose text cannot be counted
(the tokeniser fails on it): one bad text never fails its neighbours.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from concurrent.futures import Executor

from consumers import tokeniser
from consumers.stats import Stats
from consumers.step import Envelope, Step
from schema.events import TOKENISER, UNCOUNTED, RequestEvent

log = logging.getLogger(__name__)

TOKEN_SOURCE = TOKENISER


def with_counts(event: RequestEvent) -> RequestEvent:
    """``event`` with missing token counts filled from its text, and without the text.

    A count the provider reported is kept. The input is counted only when the proxy
    sent the prompt; the output whenever the output count is missing and text came
    (a truncated completion counts what the proxy kept). ``token_source`` becomes
    ``tokeniser`` when any count came from here.
    """
    text = event.text
    if text is None:
        return event
    if event.token_source == UNCOUNTED:
        return event.sanitised()
    needs_input = event.input_tokens is None and text.prompt is not None
    needs_output = event.output_tokens is None
    if not (needs_input or needs_output):
        return event.sanitised()
    enc = tokeniser.encoding_for(event.actual_model or event.requested_model)
    return dataclasses.replace(
        event,
        input_tokens=tokeniser.count_prompt(enc, text.prompt)
        if needs_input
        else event.input_tokens,
        output_tokens=tokeniser.count_text(enc, text.completion)
        if needs_output
        else event.output_tokens,
        token_source=TOKEN_SOURCE,
        text=None,
    )


def counted(event: RequestEvent) -> RequestEvent:
    """:func:`with_counts`, or the event marked uncounted when its text cannot be counted."""
    try:
        return with_counts(event)
    except Exception as exc:  # any text a tokeniser chokes on: this event alone loses counts
        log.warning("cannot count the tokens of event %s (%s); marked uncounted",
                    event.id, type(exc).__name__)  # fmt: skip
        return dataclasses.replace(event, text=None, token_source=UNCOUNTED)


def count_all(events: list[RequestEvent]) -> list[RequestEvent]:
    return [counted(e) for e in events]


def _needs_counting(event: RequestEvent) -> bool:
    return (
        event.text is not None
        and event.token_source != UNCOUNTED
        and (event.input_tokens is None or event.output_tokens is None)
    )


class Tokenise:
    def __init__(
        self, next_step: Step[Envelope], executor: Executor, stats: Stats, max_pending: int
    ) -> None:
        self.next_step = next_step
        self.executor = executor
        self.stats = stats
        self.max_pending = max_pending
        self._pending: deque[tuple[Envelope, asyncio.Future[list[RequestEvent]]]] = deque()

    @property
    def held(self) -> int:
        return sum(len(env.events) for env, _ in self._pending) + self.next_step.held

    async def submit(self, envelope: Envelope) -> None:
        loop = asyncio.get_running_loop()
        counting = sum(_needs_counting(e) for e in envelope.events)
        future: asyncio.Future[list[RequestEvent]]
        if counting:
            self.stats.events_tokenised += counting
            future = loop.run_in_executor(self.executor, count_all, envelope.events)
        else:
            future = loop.create_future()
            future.set_result([e if e.text is None else e.sanitised() for e in envelope.events])
        self._pending.append((envelope, future))
        await self._forward(wait=len(self._pending) > self.max_pending)

    async def _forward(self, *, wait: bool) -> None:
        """Pass on the finished envelopes at the head; with ``wait``, at least one."""
        while self._pending and (wait or self._pending[0][1].done()):
            envelope, future = self._pending.popleft()
            envelope.events = await future
            wait = False
            await self.next_step.submit(envelope)

    async def poll(self) -> None:
        await self._forward(wait=False)
        await self.next_step.poll()

    async def join(self) -> None:
        while self._pending:
            await self._forward(wait=True)
        await self.next_step.join()

    def terminate(self) -> None:
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()
        self.next_step.terminate()
