"""Each step on its own: what it passes on, when, and what it settles."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg
import pytest

from consumers import tokeniser
from consumers.batch import BatchStep
from consumers.commit import Commit
from consumers.decode import Decode
from consumers.insert import Insert
from consumers.stats import Stats
from consumers.step import Batch, DeadEvent, Envelope
from consumers.tokenise import Tokenise
from schema.events import EVENTS_TYPE, HEALTH_TYPE, HealthSnapshot, TokenText, encode_events
from tests.consumers.conftest import PROMPT, ManualClock, make_event


@dataclass
class FakeDelivery:
    """A broker message as a step sees it, recording how it was settled."""

    body: bytes = b""
    type: str | None = EVENTS_TYPE
    message_id: str | None = None
    delivery_tag: int = 1
    headers: dict[str, Any] = field(default_factory=dict)
    settled: list[str] = field(default_factory=list)

    async def ack(self, multiple: bool = False) -> None:
        self.settled.append("ack")


class FakeDeadLetters:
    """Records what would be dead-lettered, as :class:`consumers.dead.DeadLetters` gets it."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.events: list[tuple[object, str]] = []
        self.undecodable: list[str] = []
        self.log = log if log is not None else []

    async def publish_events(self, dead: list[DeadEvent], origin: object) -> None:
        self.events.extend((d.record, d.reason) for d in dead)
        self.log.append("dead")

    async def publish_undecodable(self, origin: object, reason: str) -> None:
        self.undecodable.append(reason)
        self.log.append("dead")


def _decode(out: Collect, stats: Stats, dead: FakeDeadLetters, limit: int = 3) -> Decode:
    return Decode(out, stats, dead, limit)  # type: ignore[arg-type]


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


async def test_an_undecodable_message_is_acked_and_only_a_marker_dead_lettered() -> None:
    out, stats, dead = Collect(), Stats(), FakeDeadLetters()
    delivery = FakeDelivery(body=b"not json at all " + PROMPT.encode())
    await _decode(out, stats, dead).submit(delivery)  # type: ignore[arg-type]
    assert delivery.settled == ["ack"] and dead.log == ["dead"]
    assert dead.undecodable and "not JSON" in dead.undecodable[0]
    assert PROMPT not in dead.undecodable[0]
    assert out.items == [] and stats.messages_undecodable == 1


async def test_an_unknown_message_type_is_not_kept() -> None:
    out, dead = Collect(), FakeDeadLetters()
    delivery = FakeDelivery(body=encode_events([make_event()]), type="lectr.other.v9")
    await _decode(out, Stats(), dead).submit(delivery)  # type: ignore[arg-type]
    assert delivery.settled == ["ack"] and "unknown message type" in dead.undecodable[0]
    assert out.items == []


async def test_invalid_events_are_set_aside_without_text_and_the_rest_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    out, stats, dead = Collect(), Stats(), FakeDeadLetters()
    good = [make_event(), make_event()]
    too_long = make_event(token_source="x" * 30)  # the column holds 20
    nul_model = make_event(requested_model="gpt-4o\u0000")
    surrogate = make_event(feature="caf-MARK")
    body = encode_events([good[0], too_long, good[1], nul_model, surrogate])
    body = body.replace(str(good[1].id).encode(), b"not-a-uuid")
    # A lone surrogate, as JSON escapes a client's broken text: orjson refuses the whole
    # body, so it is read leniently and only this event is refused.
    body = body.replace(b"caf-MARK", b"caf\\udce9")
    delivery = FakeDelivery(body=body)
    await _decode(out, stats, dead).submit(delivery)  # type: ignore[arg-type]
    (envelope,) = out.items
    assert [e.id for e in envelope.events] == [good[0].id]
    assert stats.events_invalid == 4 and stats.events_received == 5
    reasons = {_id(d.record): d.reason for d in envelope.dead}
    assert reasons[str(too_long.id)] == "token_source: longer than 20 characters"
    assert reasons[str(nul_model.id)] == "requested_model: holds NUL"
    assert reasons[str(surrogate.id)] == "feature: holds a lone surrogate (not UTF-8)"
    assert reasons["not-a-uuid"].startswith("event #2: id")
    assert all(getattr(d.record, "text", None) is None for d in envelope.dead)
    assert all("text" not in d.record for d in envelope.dead if isinstance(d.record, dict))
    assert delivery.settled == [] and dead.log == []  # the commit step dead-letters them
    assert "token_source" in caplog.text and "event #2" in caplog.text
    assert PROMPT not in caplog.text


def _id(record: object) -> str:
    return str(record.get("id")) if isinstance(record, dict) else str(record.id)  # type: ignore[attr-defined]


async def test_a_message_at_the_delivery_limit_is_dead_lettered_unprocessed() -> None:
    out, stats, dead = Collect(), Stats(), FakeDeadLetters()
    events = [make_event(), make_event(requested_model="bad\u0000")]
    delivery = FakeDelivery(body=encode_events(events), headers={"x-delivery-count": 3})
    await _decode(out, stats, dead, limit=3).submit(delivery)  # type: ignore[arg-type]
    assert out.items == [] and delivery.settled == ["ack"] and dead.log == ["dead"]
    assert [r.id for r, _ in dead.events] == [e.id for e in events]  # type: ignore[attr-defined]
    assert all("delivery limit" in reason for _, reason in dead.events)
    assert stats.messages_over_limit == 1
    # One delivery fewer: processed as usual.
    again = FakeDelivery(body=encode_events(events), headers={"x-delivery-count": 2})
    await _decode(out, stats, dead, limit=3).submit(again)  # type: ignore[arg-type]
    assert len(out.items) == 1 and again.settled == []


async def test_health_snapshots_are_decoded() -> None:
    out = Collect()
    snapshot = HealthSnapshot("proxy", "p-1", datetime(2026, 11, 27, tzinfo=UTC), buffer_depth=3)
    delivery = FakeDelivery(body=snapshot.encode(), type=HEALTH_TYPE)
    await _decode(out, Stats(), FakeDeadLetters()).submit(delivery)  # type: ignore[arg-type]
    (envelope,) = out.items
    assert envelope.health == [snapshot] and envelope.events == []


@pytest.mark.parametrize(
    "body",
    [
        b"not a snapshot",
        HealthSnapshot("proxy", "p-\x00", datetime(2026, 11, 27, tzinfo=UTC)).encode(),
        HealthSnapshot(
            "proxy", "p", datetime(2026, 11, 27, tzinfo=UTC), details={"k": "\x00"}
        ).encode(),
    ],
)
async def test_a_health_snapshot_that_cannot_be_stored_is_dropped_and_counted(body) -> None:
    out, stats, dead = Collect(), Stats(), FakeDeadLetters()
    delivery = FakeDelivery(body=body, type=HEALTH_TYPE)
    await _decode(out, stats, dead).submit(delivery)  # type: ignore[arg-type]
    (envelope,) = out.items  # acked with its batch, nothing to store
    assert envelope.health == [] and stats.health_invalid == 1 and dead.log == []


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


async def test_tokenise_keeps_uncounted_events_and_survives_text_it_cannot_count(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    count_text = tokeniser.count_text

    def failing(enc: object, text: str) -> int:
        if "BOOM" in text:
            raise ValueError("the tokeniser chokes")
        return count_text(enc, text)  # type: ignore[arg-type]

    monkeypatch.setattr(tokeniser, "count_text", failing)
    out, stats = Collect(), Stats()
    uncounted = make_event(text=None, token_source="uncounted")
    # An uncounted mark with text anyway: not counted, the mark kept, the text dropped.
    marked = make_event(token_source="uncounted")
    # Text the tokeniser fails on: this event alone loses its counts.
    bad = make_event(text=TokenText(prompt=None, completion="BOOM " + PROMPT))
    good = make_event()
    envelope = Envelope(FakeDelivery(), events=[uncounted, marked, bad, good])
    with ThreadPoolExecutor(1) as executor:
        step = Tokenise(out, executor, stats, max_pending=2)
        await step.submit(envelope)
        await step.join()
    (passed,) = out.items
    by_id = {e.id: e for e in passed.events}
    assert all(e.text is None for e in passed.events)
    assert by_id[uncounted.id].token_source == "uncounted"
    assert by_id[marked.id].token_source == "uncounted" and by_id[marked.id].output_tokens is None
    assert by_id[bad.id].token_source == "uncounted" and by_id[bad.id].output_tokens is None
    assert by_id[good.id].token_source == "tokeniser" and by_id[good.id].output_tokens
    assert PROMPT not in caplog.text


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


class _FailingPool:
    """A pool whose first ``failures`` acquisitions raise ``error`` (the database is
    unreachable, say, or not migrated yet)."""

    def __init__(self, pool: asyncpg.Pool, failures: int, error: Exception) -> None:
        self.pool = pool
        self.failures = failures
        self.error = error

    def acquire(self) -> object:
        if self.failures:
            self.failures -= 1
            raise self.error
        return self.pool.acquire()


def _down_pool(pool: asyncpg.Pool, failures: int) -> _FailingPool:
    return _FailingPool(pool, failures, ConnectionRefusedError("connection refused"))


async def test_insert_retries_with_capped_backoff_and_acks_nothing_meanwhile(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    out, stats, clock = Collect(), Stats(), ManualClock()
    step = Insert(out, _down_pool(pool, 8), stats, clock=clock, retry_max_wait_s=2.0)  # type: ignore[arg-type]
    org = uuid.uuid4()
    batch = Batch([Envelope(FakeDelivery(), events=[make_event(org_id=org, text=None)])])
    await step.submit(batch)
    await step.join()
    assert clock.slept == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    assert stats.database_retries == 8
    assert out.items == [batch] and batch.inserted == 1
    assert await db.fetchval("SELECT count(*) FROM request_logs WHERE org_id = $1", org) == 1


async def test_an_error_about_the_database_itself_is_waited_out_not_dead_lettered(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    out, stats, clock = Collect(), Stats(), ManualClock()
    step = Insert(
        out,
        _FailingPool(
            pool, 3, asyncpg.UndefinedColumnError('column "skipped_rule_id" does not exist')
        ),
        stats,
        clock=clock,
        retry_max_wait_s=2.0,
    )  # type: ignore[arg-type]
    org = uuid.uuid4()
    envelope = Envelope(
        FakeDelivery(), events=[make_event(org_id=org, text=None) for _ in range(3)]
    )
    await step.submit(Batch([envelope]))
    await step.join()
    assert clock.slept == [0.1, 0.2, 0.4] and envelope.dead == []
    assert await db.fetchval("SELECT count(*) FROM request_logs WHERE org_id = $1", org) == 3


async def test_an_event_postgres_refuses_is_isolated_and_the_rest_of_its_batch_stored(
    pool: asyncpg.Pool, db: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    out, clock, stats = Collect(), ManualClock(), Stats()
    org, other_org = uuid.uuid4(), uuid.uuid4()
    # One message with events of two orgs, the bad one in the middle; two more messages.
    bad_event = make_event(org_id=org, text=None, status_code=999, feature="secret-feature")
    mixed = Envelope(
        FakeDelivery(),
        events=[
            *[make_event(org_id=other_org, text=None) for _ in range(6)],
            bad_event,
            *[make_event(org_id=other_org, text=None) for _ in range(5)],
        ],
    )
    others = [
        Envelope(FakeDelivery(), events=[make_event(org_id=org, text=None)]) for _ in range(2)
    ]
    snapshot = HealthSnapshot("proxy", f"p-{org}", datetime(2026, 11, 27, tzinfo=UTC))
    health = Envelope(FakeDelivery(), health=[snapshot])
    await db.execute(
        "ALTER TABLE request_logs ADD CONSTRAINT ck_test_status CHECK (status_code < 900) NOT VALID"
    )
    try:
        step = Insert(out, pool, stats, clock=clock, retry_max_wait_s=1)
        await step.submit(Batch([others[0], mixed, health, others[1]]))
        await step.join()
    finally:
        await db.execute("ALTER TABLE request_logs DROP CONSTRAINT ck_test_status")
    (batch,) = out.items
    assert batch.inserted == 13
    assert await db.fetchval("SELECT count(*) FROM request_logs WHERE org_id = $1", other_org) == 11
    assert await db.fetchval("SELECT count(*) FROM request_logs WHERE org_id = $1", org) == 2
    assert await db.fetchval(
        "SELECT count(*) FROM pipeline_health WHERE instance = $1", snapshot.instance
    ) == 1  # fmt: skip
    assert [e.id for e in mixed.events] == [e.id for e in mixed.events if e is not bad_event]
    assert bad_event not in mixed.events and len(mixed.events) == 11
    (dead,) = mixed.dead
    assert dead.record is bad_event and "CheckViolation" in dead.reason
    assert "ck_test_status" in dead.reason
    # The failing row Postgres quotes (header values among it) is in no reason or log line.
    assert "secret-feature" not in dead.reason and "secret-feature" not in caplog.text
    assert all(not env.dead for env in (*others, health))


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
    step = Insert(out, _down_pool(pool, 1000), Stats(), clock=_RealSleep(), retry_max_wait_s=1)  # type: ignore[arg-type]
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


async def test_commit_publishes_the_stored_events_then_dead_letters_then_acks() -> None:
    exchange, stats, clock = _Exchange(), Stats(), ManualClock()
    order: list[str] = []
    dead = FakeDeadLetters(order)
    stored = Envelope(_Recorded(order), events=[make_event(text=None)])
    health = Envelope(_Recorded(order))
    refused = make_event(text=None)
    partly = Envelope(
        _Recorded(order),
        events=[make_event(text=None)],
        dead=[DeadEvent(refused, "refused by Postgres: CheckViolationError")],
    )
    batch = Batch([stored, health, partly], inserted=2)
    await Commit(exchange, dead, stats, clock).submit(batch)  # type: ignore[arg-type]
    assert exchange.published == [
        (encode_events([*stored.events, *partly.events]), "replay.events")
    ]
    assert dead.events == [(refused, "refused by Postgres: CheckViolationError")]
    # Each message is acked whole, after its own dead letters are confirmed.
    assert order == ["ack", "ack", "dead", "ack"]
    assert stats.events_stored == 2 and stats.events_dead == 1


class _Recorded(FakeDelivery):
    """A delivery that writes its ack into a log shared with the dead letters."""

    def __init__(self, order: list[str]) -> None:
        super().__init__()
        self.order = order

    async def ack(self, multiple: bool = False) -> None:
        self.order.append("ack")
