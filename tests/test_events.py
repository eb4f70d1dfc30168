"""The event wire format between proxies, consumers and the replay stream."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import orjson
import pytest

from schema.events import (
    BATCH_OVERHEAD,
    UNCOUNTED,
    DecodedBatch,
    HealthSnapshot,
    InvalidEvent,
    RequestEvent,
    batch_body,
    decode_events,
    encode_event,
    encode_events,
)
from schema.tables import request_logs
from tests.support.events import sample_event

PROMPT = "PLANTED-PROMPT-7f3a: summarise the merger terms"
COMPLETION = "PLANTED-COMPLETION-91bc: the merger closes in Q3"


def _event(**changes: object) -> RequestEvent:
    return sample_event(prompt=PROMPT, completion=COMPLETION, **changes)


def test_events_are_the_request_logs_columns() -> None:
    fields = {f.name for f in dataclasses.fields(RequestEvent)} - {"text"}
    assert fields == {c.name for c in request_logs.columns}


def test_round_trip_keeps_every_field() -> None:
    events = [
        _event(),
        _event(
            streaming=False,
            text=None,
            input_tokens=12,
            output_tokens=3,
            token_source="provider",
            cost_usd=Decimal("0.00001234"),
        ),
    ]
    decoded = decode_events(encode_events(events))
    assert decoded == DecodedBatch(events=events, errors=[])


def test_a_sanitised_event_carries_no_text() -> None:
    body = encode_events([_event().sanitised()])
    assert PROMPT.encode() not in body and COMPLETION.encode() not in body
    assert decode_events(body).events[0].text is None
    # ...while the raw event, for the consumer only, does carry it.
    assert PROMPT.encode() in encode_events([_event()])


def test_events_encoded_one_by_one_join_into_the_same_batch() -> None:
    events = [_event(), _event(text=None, token_source="provider", input_tokens=3)]
    encoded = [encode_event(e) for e in events]
    body = batch_body(encoded)
    assert body == encode_events(events)
    assert len(body) == BATCH_OVERHEAD + sum(map(len, encoded)) + len(encoded) - 1
    assert decode_events(body).events == events
    assert decode_events(batch_body([])).events == []


def test_an_event_that_cannot_be_encoded_fails_alone() -> None:
    with pytest.raises(TypeError):  # orjson.JSONEncodeError: a lone surrogate
        encode_event(_event(feature="caf\udce9"))
    assert encode_event(_event())


def test_an_uncounted_event_has_no_text_and_says_so() -> None:
    event = _event()
    uncounted = event.uncounted()
    assert uncounted.text is None and uncounted.token_source == UNCOUNTED
    assert dataclasses.replace(uncounted, text=event.text, token_source=None) == event
    counted = _event(text=None, token_source="provider", input_tokens=3, output_tokens=1)
    assert counted.uncounted() is counted  # nothing to drop: nothing changes
    assert PROMPT.encode() not in encode_event(uncounted)


def test_defaults_for_absent_optional_fields() -> None:
    raw = orjson.loads(encode_events([_event(text=None)]))
    for name in ("feature", "task_type", "rule_id", "ttfb_ms", "provider_unknown"):
        del raw["events"][0][name]
    raw["events"][0]["added_by_a_newer_proxy"] = 1
    event = decode_events(orjson.dumps(raw)).events[0]
    assert (event.feature, event.task_type, event.rule_id) == ("untagged", None, None)
    assert event.provider_unknown is False


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"id": "not-a-uuid"}, "id:"),
        ({"created_at": "2026-11-27T10:00:00"}, "created_at: needs a UTC offset"),
        ({"status_code": "200"}, "status_code: must be an HTTP status code"),
        ({"latency_ms": -1}, "latency_ms:"),
        ({"input_tokens": 1.5}, "input_tokens: must be a whole number"),
        ({"streaming": "yes"}, "streaming: must be true or false"),
        ({"feature": "x" * 101}, "feature: must be a string of at most 100"),
        ({"org_id": None}, "org_id: must not be null"),
        ({"cost_usd": "lots"}, "cost_usd:"),
    ],
)
def test_a_bad_event_is_reported_and_the_rest_decode(change: dict, reason: str) -> None:
    good = [_event(), _event()]
    raw = orjson.loads(encode_events([good[0], _event(), good[1]]))
    raw["events"][1].update(change)
    decoded = decode_events(orjson.dumps(raw))
    assert decoded.events == good
    assert len(decoded.errors) == 1
    index, message = decoded.errors[0]
    assert index == 1 and message.startswith(reason)


def test_a_missing_field_is_named() -> None:
    raw = orjson.loads(encode_events([_event()]))
    del raw["events"][0]["endpoint"], raw["events"][0]["status_code"]
    assert decode_events(orjson.dumps(raw)).errors == [(0, "missing endpoint, status_code")]


@pytest.mark.parametrize(
    "body", [b"\xff\xfe", b"[]", b'{"v": 2, "events": []}', b'{"v": 1, "events": {}}']
)
def test_a_body_that_is_not_a_batch_is_rejected(body: bytes) -> None:
    with pytest.raises(InvalidEvent):
        decode_events(body)


def test_health_snapshot_round_trip_and_rejects() -> None:
    snapshot = HealthSnapshot(
        component="proxy",
        instance="proxy-1:4242",
        recorded_at=datetime(2026, 11, 27, 10, tzinfo=UTC),
        buffer_depth=3,
        events_published=1_000,
        events_dropped=2,
        publish_failures=0,
        details={"reconnects": 1},
    )
    assert HealthSnapshot.decode(snapshot.encode()) == snapshot
    for bad in (
        b"nope",
        b'{"v": 1}',
        b'{"v": 1, "component": "proxy", "instance": "i", '
        b'"recorded_at": "2026-11-27T10:00:00+00:00", "events_dropped": -1}',
    ):
        with pytest.raises(InvalidEvent, match="health snapshot"):
            HealthSnapshot.decode(bad)


async def test_a_sanitised_event_inserts_as_a_request_logs_row(db: asyncpg.Connection) -> None:
    event = _event(
        input_tokens=10,
        output_tokens=5,
        cached_tokens=0,
        token_source="tokeniser",
        cost_usd=Decimal("0.00000450"),
    ).sanitised()
    row = {f.name: getattr(event, f.name) for f in dataclasses.fields(event) if f.name != "text"}
    columns = ", ".join(row)
    placeholders = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    await db.execute(f"INSERT INTO request_logs ({columns}) VALUES ({placeholders})", *row.values())
    stored = await db.fetchrow("SELECT * FROM request_logs WHERE id = $1", event.id)
    assert dict(stored) == row
