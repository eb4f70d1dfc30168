"""Each step on its own: what it passes on, when, and what it settles."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aio_pika
import asyncpg
import pytest

from consumers.batch import BatchStep
from consumers.commit import Commit
from consumers.decode import Decode
from consumers.insert import Insert
from consumers.stats import Stats
from consumers.step import Batch, Envelope
from consumers.tokenise import Tokenise
from schema.events import EVENTS_TYPE, HEALTH_TYPE, HealthSnapshot, encode_events
from tests.consumers.conftest import PROMPT, ManualClock, make_event


@dataclass
class FakeDelivery:
    """A broker message as a step sees it, recording how it was settled."""

    body: bytes = b""
    type: str | None = EVENTS_TYPE
    message_id: str | None = None
    delivery_tag: int = 1
    settled: list[str] = field(default_factory=list)

    async def ack(self, multiple: bool = False) -> None:
        self.settled.append("ack")

    async def reject(self, requeue: bool = False) -> None:
        self.settled.append("requeue" if requeue else "reject")


class Collect:
    """A last step that keeps what it is given."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self.joined = False
        self.terminated = False
        self.block: asyncio.Event | None = None

    @property
    def held(self) -> int:
        return 0

    async def submit(self, item: object) -> None:
        if self.block is not None:
            await self.block.wait()
        self.items.append(item)

    async def poll(self) -> None:
        return None

    async def join(self) -> None:
        self.joined = True

    def terminate(self) -> None:
        self.terminated = True


def _envelope(events: int) -> Envelope:
    return Envelope(FakeDelivery(), events=[make_event() for _ in range(events)])


# -- batch ------------------------------------------------------------------------------


async def test_a_batch_is_passed_on_once_it_holds_batch_size_events() -> None:
    out, clock = Collect(), ManualClock()
    step = BatchStep(out, clock, batch_size=5, flush_interval_s=5)
    await step.submit(_envelope(3))
    assert out.items == [] and step.held == 3
    await step.submit(_envelope(3))  # a message is never split: 6 events go together
    assert [b.event_count for b in out.items] == [6]
    assert step.held == 0


async def test_a_partial_batch_is_passed_on_after_the_flush_interval() -> None:
    out, clock = Collect(), ManualClock()
    step = BatchStep(out, clock, batch_size=100, flush_interval_s=5)
    await step.submit(_envelope(1))
    clock.advance(4.9)
    await step.poll()
    assert out.items == []
    await step.submit(_envelope(1))  # the interval counts from the first envelope
    clock.advance(0.1)
    await step.poll()
    assert [b.event_count for b in out.items] == [2]
    clock.advance(60)
    await step.poll()
    assert len(out.items) == 1  # nothing more to pass on


async def test_join_passes_on_the_partial_batch_then_joins_the_next_step() -> None:
    out, clock = Collect(), ManualClock()
    step = BatchStep(out, clock, batch_size=100, flush_interval_s=5)
    await step.submit(_envelope(2))
    await step.join()
    assert [b.event_count for b in out.items] == [2] and out.joined


async def test_terminate_drops_the_batch_unacked() -> None:
    out, clock = Collect(), ManualClock()
    step = BatchStep(out, clock, batch_size=100, flush_interval_s=5)
    envelope = _envelope(2)
    await step.submit(envelope)
    step.terminate()
    await step.join()
    assert out.items == [] and out.terminated and envelope.delivery.settled == []


# -- decode -----------------------------------------------------------------------------


async def test_an_undecodable_message_is_rejected_and_nothing_passed_on() -> None:
    out, stats = Collect(), Stats()
    delivery = FakeDelivery(body=b"not json at all")
    await Decode(out, stats).submit(delivery)  # type: ignore[arg-type]
    assert delivery.settled == ["reject"]
    assert out.items == [] and stats.messages_rejected == 1


async def test_an_unknown_message_type_is_rejected() -> None:
    out = Collect()
    delivery = FakeDelivery(body=encode_events([make_event()]), type="lectr.other.v9")
    await Decode(out, Stats()).submit(delivery)  # type: ignore[arg-type]
    assert delivery.settled == ["reject"]


async def test_invalid_events_are_dropped_and_counted_the_rest_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    out, stats = Collect(), Stats()
    good = [make_event(), make_event()]
    too_long = make_event(token_source="x" * 30)  # the column holds 20
    body = encode_events([good[0], too_long, good[1]])
    body = body.replace(str(good[1].id).encode(), b"not-a-uuid")
    await Decode(out, stats).submit(FakeDelivery(body=body))  # type: ignore[arg-type]
    (envelope,) = out.items
    assert [e.id for e in envelope.events] == [good[0].id]
    assert stats.events_invalid == 2 and stats.events_received == 3
    assert "token_source" in caplog.text and "event #2" in caplog.text
    assert PROMPT not in caplog.text


async def test_health_snapshots_are_decoded() -> None:
    out = Collect()
    snapshot = HealthSnapshot("proxy", "p-1", datetime(2026, 11, 27, tzinfo=UTC), buffer_depth=3)
    await Decode(out, Stats()).submit(FakeDelivery(body=snapshot.encode(), type=HEALTH_TYPE))  # type: ignore[arg-type]
    (envelope,) = out.items
    assert envelope.health == [snapshot] and envelope.events == []


# -- tokenise ---------------------------------------------------------------------------


async def test_tokenise_keeps_order_and_drops_text() -> None:
    out, stats = Collect(), Stats()
    with ThreadPoolExecutor(2) as executor:
        step = Tokenise(out, executor, stats, max_pending=2)
        envelopes = [_envelope(2) for _ in range(5)]
        for envelope in envelopes:
            await step.submit(envelope)
        await step.join()
    assert out.items == envelopes
    assert all(e.text is None and e.output_tokens for env in envelopes for e in env.events)
    assert stats.events_tokenised == 10


async def test_tokenise_holds_at_most_max_pending_envelopes() -> None:
    out = Collect()
    out.block = asyncio.Event()
    with ThreadPoolExecutor(1) as executor:
        step = Tokenise(out, executor, Stats(), max_pending=2)
        submitting = asyncio.ensure_future(step.submit(_envelope(1)))
        await asyncio.sleep(0.05)
        # The next step is busy, so the first envelope waits in it, not in tokenise.
        more = asyncio.ensure_future(_submit_all(step, 3))
        await asyncio.sleep(0.1)
        assert not more.done()
        out.block.set()
        await asyncio.gather(submitting, more)
        await step.join()
    assert len(out.items) == 4


async def _submit_all(step: Tokenise, count: int) -> None:
    for _ in range(count):
        await step.submit(_envelope(1))


# -- insert and commit ------------------------------------------------------------------


class _DownPool:
    """A pool whose database is unreachable for the first ``failures`` acquisitions."""

    def __init__(self, pool: asyncpg.Pool, failures: int) -> None:
        self.pool = pool
        self.failures = failures

    def acquire(self) -> object:
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("connection refused")
        return self.pool.acquire()


async def test_insert_retries_with_capped_backoff_and_acks_nothing_meanwhile(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    out, stats, clock = Collect(), Stats(), ManualClock()
    step = Insert(out, _DownPool(pool, 8), stats, clock=clock, retry_max_wait_s=2.0)  # type: ignore[arg-type]
    org = uuid.uuid4()
    batch = Batch([Envelope(FakeDelivery(), events=[make_event(org_id=org, text=None)])])
    await step.submit(batch)
    await step.join()
    assert clock.slept == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    assert stats.database_retries == 8
    assert out.items == [batch] and batch.inserted == 1
    assert await db.fetchval("SELECT count(*) FROM request_logs WHERE org_id = $1", org) == 1


async def test_a_message_whose_rows_cannot_be_stored_is_marked_and_the_rest_stored(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    out, clock = Collect(), ManualClock()
    org = uuid.uuid4()
    bad = Envelope(FakeDelivery(), events=[make_event(org_id=org, text=None, status_code=999)])
    await db.execute(
        "ALTER TABLE request_logs ADD CONSTRAINT ck_test_status CHECK (status_code < 900) NOT VALID"
    )
    try:
        good = Envelope(FakeDelivery(), events=[make_event(org_id=org, text=None)])
        step = Insert(out, pool, Stats(), clock=clock, retry_max_wait_s=1)
        await step.submit(Batch([good, bad]))
        await step.join()
    finally:
        await db.execute("ALTER TABLE request_logs DROP CONSTRAINT ck_test_status")
    assert good.failed is None and bad.failed is not None and "CheckViolation" in bad.failed
    assert await db.fetchval("SELECT count(*) FROM request_logs WHERE org_id = $1", org) == 1


class _Exchange:
    def __init__(self) -> None:
        self.published: list[tuple[bytes, str]] = []

    async def publish(self, message: aio_pika.Message, routing_key: str) -> None:
        self.published.append((message.body, routing_key))


async def test_insert_writes_at_most_writers_batches_at_once(pool: asyncpg.Pool) -> None:
    out = Collect()
    out.block = asyncio.Event()
    step = Insert(out, pool, Stats(), clock=ManualClock(), retry_max_wait_s=1, writers=2)
    batches = [Batch([Envelope(FakeDelivery(), events=[make_event(text=None)])]) for _ in range(3)]
    await step.submit(batches[0])
    await step.submit(batches[1])
    third = asyncio.ensure_future(step.submit(batches[2]))
    await asyncio.sleep(0.3)
    assert not third.done() and step.held == 2  # both writers wait on the next step
    out.block.set()
    await third
    await step.join()
    assert sorted(map(id, out.items)) == sorted(map(id, batches))


async def test_terminate_cancels_writes_in_flight(pool: asyncpg.Pool) -> None:
    out = Collect()
    step = Insert(out, _DownPool(pool, 1000), Stats(), clock=_RealSleep(), retry_max_wait_s=1)  # type: ignore[arg-type]
    delivery = FakeDelivery()
    await step.submit(Batch([Envelope(delivery, events=[make_event(text=None)])]))
    await asyncio.sleep(0.05)
    assert step.held == 1
    step.terminate()
    await asyncio.sleep(0)
    assert step.held == 0 and out.items == [] and delivery.settled == []


class _RealSleep(ManualClock):
    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def test_commit_publishes_the_stored_events_then_settles_every_message() -> None:
    exchange, stats, clock = _Exchange(), Stats(), ManualClock()
    stored = Envelope(FakeDelivery(), events=[make_event(text=None)])
    health = Envelope(FakeDelivery())
    failed = Envelope(FakeDelivery(), events=[make_event(text=None)], failed="CheckViolation")
    batch = Batch([stored, health, failed], inserted=1)
    await Commit(exchange, stats, clock).submit(batch)  # type: ignore[arg-type]
    assert exchange.published == [(encode_events(stored.events), "replay.events")]
    assert stored.delivery.settled == ["ack"] and health.delivery.settled == ["ack"]
    assert failed.delivery.settled == ["reject"]
    assert stats.events_stored == 1 and stats.messages_rejected == 1
