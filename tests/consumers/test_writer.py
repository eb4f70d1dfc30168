"""The batch transaction: idempotent inserts, rollups from inserted rows only, re-pricing."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from consumers.rollups import rollups, status_class
from consumers.writer import HealthRow, reprice_events, write_batch
from schema.events import HealthSnapshot, RequestEvent
from schema.latency import BUCKET_COUNT, bucket_index
from tests.consumers.conftest import make_event, rollup_rows

HOUR = datetime(2026, 11, 27, 9, tzinfo=UTC)


def _events(org: uuid.UUID) -> list[RequestEvent]:
    base = dict(org_id=org, text=None, input_tokens=100, output_tokens=50, cached_tokens=10)
    return [
        make_event(**base, created_at=HOUR + timedelta(minutes=1), latency_ms=120.0,
                   cost_usd=Decimal("0.001")),
        make_event(**base, created_at=HOUR + timedelta(minutes=59), latency_ms=900.0,
                   ttfb_ms=None, streaming=False, cost_usd=Decimal("0.002")),
        make_event(**base, created_at=HOUR + timedelta(minutes=30), status_code=502,
                   error_category="upstream_error", cost_usd=None),
        make_event(**base, created_at=HOUR + timedelta(hours=1), actual_model=None,
                   requested_model=None, cost_usd=Decimal("0.004")),
    ]  # fmt: skip


async def test_rows_hold_every_field(db: asyncpg.Connection) -> None:
    org = uuid.uuid4()
    events = _events(org)
    inserted = await write_batch(db, events)
    assert inserted == events
    for event in events:
        row = await db.fetchrow("SELECT * FROM request_logs WHERE id = $1", event.id)
        assert dict(row) == {f.name: getattr(event, f.name)
                             for f in dataclasses.fields(event) if f.name != "text"}  # fmt: skip


async def test_rollups_per_hour_and_key(db: asyncpg.Connection) -> None:
    org = uuid.uuid4()
    await write_batch(db, _events(org))
    rows = await rollup_rows(db, org)
    keys = [(r["bucket_start"], r["model"], r["status_class"]) for r in rows]
    assert keys == [
        (HOUR, "gpt-4o-mini", "2xx"),
        (HOUR, "gpt-4o-mini", "5xx"),
        (HOUR + timedelta(hours=1), "", "2xx"),
    ]
    ok = rows[0]
    assert ok["request_count"] == 2 and ok["error_count"] == 0 and ok["streaming_count"] == 1
    assert (ok["input_tokens"], ok["output_tokens"], ok["cached_tokens"]) == (200, 100, 20)
    assert ok["cost_usd"] == Decimal("0.003") and ok["unpriced_count"] == 0
    assert ok["latency_ms_sum"] == 1020.0 and ok["latency_ms_max"] == 900.0
    assert (ok["ttfb_ms_sum"], ok["ttfb_count"]) == (95.25, 1)
    expected = [0] * BUCKET_COUNT
    expected[bucket_index(120.0)] += 1
    expected[bucket_index(900.0)] += 1
    assert ok["latency_histogram"] == expected
    failed = rows[1]
    assert failed["error_count"] == 1 and failed["unpriced_count"] == 1
    assert failed["cost_usd"] == 0


async def test_a_redelivered_batch_changes_nothing(db: asyncpg.Connection) -> None:
    org = uuid.uuid4()
    events = _events(org)
    await write_batch(db, events[:2])
    before = await rollup_rows(db, org)
    inserted = await write_batch(db, [events[1], events[0], events[1], events[2]])
    assert inserted == [events[2]]
    after = await rollup_rows(db, org)
    assert after[0] == before[0]
    assert await db.fetchval("SELECT count(*) FROM request_logs WHERE org_id = $1", org) == 3


async def test_rollups_add_up_across_batches(db: asyncpg.Connection) -> None:
    org = uuid.uuid4()
    events = _events(org)
    await write_batch(db, events[:1])
    await write_batch(db, events[1:2])
    together = rollups(events[:2])[0]
    (row,) = [r for r in await rollup_rows(db, org) if r["status_class"] == "2xx"][:1]
    assert row["request_count"] == together.request_count
    assert row["latency_histogram"] == together.latency_histogram
    assert row["cost_usd"] == together.cost_usd


async def test_repricing_moves_rows_and_rollups(db: asyncpg.Connection) -> None:
    org = uuid.uuid4()
    events = _events(org)[:3]
    await write_batch(db, events)
    new = [
        dataclasses.replace(events[0], cost_usd=Decimal("0.011")),  # changed
        events[1],  # unchanged
        dataclasses.replace(events[2], cost_usd=Decimal("0.5")),  # was unpriced
        make_event(org_id=org, text=None, created_at=HOUR),  # never stored: left alone
    ]
    assert await reprice_events(db, new) == 2
    costs = {r["id"]: r["cost_usd"] for r in await db.fetch(
        "SELECT id, cost_usd FROM request_logs WHERE org_id = $1", org)}  # fmt: skip
    assert costs == {events[0].id: Decimal("0.011"), events[1].id: Decimal("0.002"),
                     events[2].id: Decimal("0.5")}  # fmt: skip
    ok, failed = await rollup_rows(db, org)
    assert ok["cost_usd"] == Decimal("0.013") and ok["request_count"] == 2
    assert failed["cost_usd"] == Decimal("0.5") and failed["unpriced_count"] == 0
    assert await reprice_events(db, new) == 0


async def test_health_rows_are_stored(db: asyncpg.Connection) -> None:
    instance = f"proxy-{uuid.uuid4().hex[:6]}"
    snapshot = HealthSnapshot(
        "proxy", instance, HOUR, buffer_depth=4, events_published=10, events_dropped=1,
        publish_failures=0, details={"reconnects": 2},
    )  # fmt: skip
    await write_batch(db, [], [HealthRow(snapshot), HealthRow(snapshot, ingest_lag_ms=12.5)])
    rows = await db.fetch("SELECT * FROM pipeline_health WHERE instance = $1 ORDER BY id", instance)
    assert [(r["buffer_depth"], r["events_dropped"], r["ingest_lag_ms"]) for r in rows] == [
        (4, 1, None),
        (4, 1, 12.5),
    ]
    assert rows[0]["details"] == '{"reconnects": 2}'


def test_status_classes() -> None:
    assert [status_class(c) for c in (0, 200, 302, 429, 503)] == ["0xx", "2xx", "3xx", "4xx", "5xx"]


async def test_rollups_keep_task_type_answering_model_and_token_sources(
    db: asyncpg.Connection,
) -> None:
    org = uuid.uuid4()
    base = dict(org_id=org, text=None, created_at=HOUR + timedelta(minutes=5))
    await write_batch(db, [
        make_event(**base, task_type="classification", response_model="gpt-4o-mini-2024-07-18",
                   token_source="tokeniser", input_tokens=10, output_tokens=2),
        make_event(**base, task_type="classification", response_model="gpt-4o-mini-2024-07-18",
                   token_source="provider", input_tokens=12, output_tokens=3),
        make_event(**base, task_type="classification", response_model="gpt-4o-mini-2025-01-01",
                   token_source="uncounted", input_tokens=None, output_tokens=None),
        make_event(**base, task_type=None, response_model=None),
    ])  # fmt: skip
    rows = await rollup_rows(db, org)
    by_key = {(r["task_type"], r["response_model"]): r for r in rows}
    assert set(by_key) == {
        ("classification", "gpt-4o-mini-2024-07-18"),
        ("classification", "gpt-4o-mini-2025-01-01"),
        ("", ""),
    }
    counted = by_key["classification", "gpt-4o-mini-2024-07-18"]
    assert counted["request_count"] == 2
    assert counted["tokeniser_count"] == 1 and counted["tokens_known_count"] == 2
    uncounted = by_key["classification", "gpt-4o-mini-2025-01-01"]
    assert uncounted["tokeniser_count"] == 0 and uncounted["tokens_known_count"] == 0
