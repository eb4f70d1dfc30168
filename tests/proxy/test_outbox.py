"""The buffer's bounds and text cap, and the outbox's messages: cut by count and bytes,
split when refused, a single refused or unencodable event dropped alone. The broker is a
test double here; tests/proxy/test_event_pipeline.py does the same through RabbitMQ."""

from __future__ import annotations

import uuid

import aio_pika
import aiormq
import orjson
import pytest

from proxy.buffer import EVENT_BYTES, EventBuffer
from proxy.outbox import Outbox
from schema.events import UNCOUNTED, decode_events
from tests.support.events import sample_event

MIB = 1024 * 1024


def buffer(capacity: int = 100, capacity_bytes: int = MIB, text_cap: int = MIB) -> EventBuffer:
    return EventBuffer(capacity, capacity_bytes, text_cap)


def test_events_taken_but_not_confirmed_still_count_against_the_capacity() -> None:
    events = buffer(capacity=3)
    assert all(events.put(sample_event()) for _ in range(3))
    taken = events.take(2)  # in the publisher's hands, not yet confirmed
    assert events.put(sample_event()) is False  # still full: depth never above capacity
    assert (len(events), events.queued, events.dropped) == (3, 1, 1)
    events.done(len(taken), sum(size for _, size in taken))
    assert events.put(sample_event()) and events.put(sample_event())
    assert len(events) == 3 and events.bytes > 0


def test_the_buffer_is_bounded_in_bytes_too() -> None:
    prompt = "x" * 10_000
    events = buffer(capacity=1000, capacity_bytes=35_000)
    accepted = [events.put(sample_event(prompt=prompt)) for _ in range(5)]
    assert accepted == [True, True, True, False, False]
    assert events.bytes <= 35_000 and events.dropped == 2
    assert events.put(sample_event(text=None))  # a small event still fits
    assert events.bytes <= 35_000


def test_a_long_completion_is_cut_to_the_text_cap() -> None:
    events = buffer(text_cap=2_000)
    events.put(sample_event(prompt="p" * 500, completion="é" * 5_000))
    [(event, size)] = events.take(1)
    assert event.text is not None and event.text.truncated
    assert event.text.prompt == [{"role": "user", "content": "p" * 500}]
    assert 1_900 <= len(orjson.dumps(event.text)) == size - EVENT_BYTES <= 2_000
    assert event.token_source is None  # still counted, from what was kept


def test_text_is_dropped_and_uncounted_when_the_prompt_alone_is_over_the_cap() -> None:
    events = buffer(text_cap=2_000)
    events.put(sample_event(prompt="p" * 3_000, completion="short"))
    [(event, size)] = events.take(1)
    assert event.text is None and event.token_source == UNCOUNTED
    assert size == EVENT_BYTES


class FakeBroker:
    """Confirms a message, or refuses it (as RabbitMQ does for a message over its size
    limit: the channel closes with PRECONDITION_FAILED), or fails as told."""

    def __init__(self, max_bytes: int = MIB, refuse_ids: frozenset[str] = frozenset()) -> None:
        self.max_bytes = max_bytes
        self.refuse_ids = refuse_ids
        self.fail_with: BaseException | None = None
        self.accepted: list[bytes] = []
        self.refused = 0

    async def publish(self, body: bytes) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        ids = {event["id"] for event in orjson.loads(body)["events"]}
        if len(body) > self.max_bytes or ids & self.refuse_ids:
            self.refused += 1
            raise aio_pika.exceptions.ChannelPreconditionFailed("message size is too large")
        self.accepted.append(body)

    def ids(self) -> list[uuid.UUID]:
        return [e.id for body in self.accepted for e in decode_events(body).events]


def outbox_with(events_buffer: EventBuffer, count: int, **kwargs: int) -> tuple[Outbox, list]:
    events = [sample_event(prompt="p" * 1_000) for _ in range(count)]
    for event in events:
        assert events_buffer.put(event)
    outbox = Outbox(events_buffer, **{"batch_size": 500, "batch_bytes": MIB, **kwargs})
    outbox.add(events_buffer.take(count))
    return outbox, events


async def test_messages_are_cut_by_bytes_and_by_count() -> None:
    events_buffer = buffer()
    outbox, events = outbox_with(events_buffer, 40, batch_size=15, batch_bytes=8_000)
    broker = FakeBroker()
    await outbox.send(broker.publish)
    assert broker.ids() == [e.id for e in events]
    assert all(len(body) <= 8_000 for body in broker.accepted)
    assert max(len(decode_events(body).events) for body in broker.accepted) <= 15
    assert (outbox.published, len(outbox), len(events_buffer), events_buffer.bytes) == (40, 0, 0, 0)


async def test_a_refused_message_is_split_and_a_single_refused_event_dropped() -> None:
    events_buffer = buffer()
    outbox, events = outbox_with(events_buffer, 64)
    poison = str(events[37].id)
    broker = FakeBroker(max_bytes=20_000, refuse_ids=frozenset({poison}))
    await outbox.send(broker.publish)
    assert broker.ids() == [e.id for e in events if str(e.id) != poison]
    assert (outbox.published, outbox.refused, outbox.unencodable) == (63, 1, 0)
    assert len(events_buffer) == 0 and events_buffer.bytes == 0
    assert broker.refused < 20  # halving, not one try per event


async def test_a_local_error_drops_only_the_event_that_causes_it() -> None:
    events_buffer = buffer()
    outbox, events = outbox_with(events_buffer, 8)
    broker = FakeBroker()
    bad = str(events[5].id)

    async def publish(body: bytes) -> None:
        if bad.encode() in body:
            raise KeyError("a bug")
        await broker.publish(body)

    await outbox.send(publish)
    assert broker.ids() == [e.id for e in events if str(e.id) != bad]
    assert (outbox.published, outbox.unencodable, outbox.refused) == (7, 1, 0)


async def test_a_broker_failure_keeps_every_unconfirmed_event() -> None:
    events_buffer = buffer()
    outbox, events = outbox_with(events_buffer, 10, batch_size=4)
    broker = FakeBroker()
    broker.fail_with = ConnectionResetError("gone")
    with pytest.raises(ConnectionResetError):
        await outbox.send(broker.publish)
    assert len(outbox) == 10 and len(events_buffer) == 10
    broker.fail_with = None
    await outbox.send(broker.publish)  # after reconnecting: the same events, once each
    assert broker.ids() == [e.id for e in events]


async def test_a_channel_that_closed_is_tried_once_more_then_taken_for_an_outage() -> None:
    events_buffer = buffer()
    outbox, events = outbox_with(events_buffer, 3)
    broker = FakeBroker()
    failures = [aiormq.exceptions.ChannelInvalidStateError("closed")]
    calls = 0

    async def publish(body: bytes) -> None:
        nonlocal calls
        calls += 1
        if failures:
            raise failures.pop()
        await broker.publish(body)

    await outbox.send(publish)  # closed once: sent again on a new channel
    assert calls == 2 and broker.ids() == [e.id for e in events]

    outbox, _ = outbox_with(events_buffer, 3)
    failures[:] = [aiormq.exceptions.ChannelInvalidStateError("closed")] * 2
    with pytest.raises(aiormq.exceptions.ChannelInvalidStateError):
        await outbox.send(publish)
    assert len(outbox) == 3 and outbox.unencodable == outbox.refused == 0


def test_an_unencodable_event_is_dropped_alone_when_encoded() -> None:
    events_buffer = buffer()
    good = sample_event(text=None)
    bad = sample_event(text=None, feature="caf\udce9")  # a lone surrogate: orjson refuses
    events_buffer.put(good)
    events_buffer.put(bad)
    outbox = Outbox(events_buffer, batch_size=500, batch_bytes=MIB)
    outbox.add(events_buffer.take(2))
    assert (len(outbox), outbox.unencodable, len(events_buffer)) == (1, 1, 1)


async def test_an_event_too_large_for_a_message_goes_without_its_text() -> None:
    events_buffer = buffer()
    outbox, [event] = outbox_with(events_buffer, 1, batch_bytes=1_500)
    broker = FakeBroker()
    await outbox.send(broker.publish)
    [sent] = decode_events(broker.accepted[0]).events
    assert sent.id == event.id and sent.text is None and sent.token_source == UNCOUNTED


async def test_spooled_events_go_out_first_and_unsent_events_lose_their_text() -> None:
    events_buffer = buffer()
    outbox, events = outbox_with(events_buffer, 3)
    spooled = sample_event(text=None)
    outbox.add_spooled([orjson.dumps(spooled)])
    unsent = [orjson.loads(body) for body in outbox.unsent()]
    assert [u["id"] for u in unsent] == [str(e.id) for e in (spooled, *events)]
    assert all(u["text"] is None for u in unsent)
    assert [u["token_source"] for u in unsent[1:]] == [UNCOUNTED] * 3
    broker = FakeBroker()
    await outbox.send(broker.publish)
    assert broker.ids()[0] == spooled.id and outbox.backlog == 0
