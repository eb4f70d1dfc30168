"""Ingest lag and the consumer's pipeline_health row, with chosen times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from consumers.stats import Stats
from tests.consumers.conftest import make_event

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_lag_is_the_oldest_stored_event_age_at_commit() -> None:
    stats = Stats()
    old = make_event(completed_at=NOW - timedelta(seconds=3))
    new = make_event(completed_at=NOW - timedelta(milliseconds=20))
    stats.observe_commit([new, old], inserted=1, now=NOW)
    stats.observe_commit([new], inserted=1, now=NOW)
    row = stats.report("c-1", NOW, held_events=7)
    assert row.ingest_lag_ms == 3000.0
    assert row.snapshot.component == "consumer" and row.snapshot.buffer_depth == 7
    assert row.snapshot.details["events_stored"] == 2
    assert row.snapshot.details["events_duplicate"] == 1


def test_each_report_starts_a_new_lag_window() -> None:
    stats = Stats()
    stats.observe_commit([make_event(completed_at=NOW - timedelta(seconds=1))], 1, NOW)
    assert stats.report("c-1", NOW, 0).ingest_lag_ms == 1000.0
    assert stats.report("c-1", NOW, 0).ingest_lag_ms is None  # nothing stored since


def test_an_event_from_the_future_has_no_negative_lag() -> None:
    stats = Stats()
    stats.observe_commit([make_event(completed_at=NOW + timedelta(seconds=2))], 1, NOW)
    assert stats.report("c-1", NOW, 0).ingest_lag_ms == 0.0
