"""Request events and broker messages for tests."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from datetime import UTC, datetime, timedelta

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from schema.events import RequestEvent, TokenText


def sample_event(
    *, created_at: datetime | None = None, prompt: str = "", completion: str = "", **changes: object
) -> RequestEvent:
    """A streamed gpt-4o-mini request routed by a rule, carrying ``prompt`` and
    ``completion`` as its transient text; ``changes`` replace any field."""
    started = created_at or datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC)
    event = RequestEvent(
        id=uuid.uuid4(),
        created_at=started,
        completed_at=started + timedelta(milliseconds=840),
        org_id=uuid.uuid4(),
        api_key_id=uuid.uuid4(),
        provider="openai",
        endpoint="/v1/chat/completions",
        streaming=True,
        status_code=200,
        latency_ms=840.5,
        proxy_instance="proxy-1:4242",
        requested_model="gpt-4o",
        actual_model="gpt-4o-mini",
        ttfb_ms=95.25,
        feature="search",
        task_type="summarisation",
        rule_id=uuid.uuid4(),
        text=TokenText(prompt=[{"role": "user", "content": prompt}], completion=completion),
    )
    return dataclasses.replace(event, **changes)


async def next_message(
    queue: AbstractQueue, timeout_s: float = 10.0
) -> aio_pika.abc.AbstractIncomingMessage:
    """The next message on ``queue`` (not acked), polling until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        message = await queue.get(no_ack=False, fail=False)
        if message is not None:
            return message
        if time.monotonic() > deadline:
            raise AssertionError(f"no message on {queue.name} within {timeout_s} s")
        await asyncio.sleep(0.02)


async def take_all(queue: AbstractQueue) -> list[AbstractIncomingMessage]:
    """Every message now in ``queue``, acked."""
    messages = []
    while (message := await queue.get(no_ack=False, fail=False)) is not None:
        await message.ack()
        messages.append(message)
    return messages
