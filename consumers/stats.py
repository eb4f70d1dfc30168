"""The consumer's counters and its ingest lag, reported to ``pipeline_health``."""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime

from consumers.writer import HealthRow
from schema.events import HealthSnapshot, RequestEvent


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Stats:
    """Totals since the process started (so a lost snapshot loses nothing)."""

    messages: int = 0
    # Messages that were not an event batch (dropped; a marker is dead-lettered).
    messages_undecodable: int = 0
    # Messages delivered LECTR_INGEST_DELIVERY_LIMIT times (their events dead-lettered).
    messages_over_limit: int = 0
    events_received: int = 0
    events_invalid: int = 0
    # Events dead-lettered (sanitised): invalid, refused by Postgres, or over the limit.
    events_dead: int = 0
    events_tokenised: int = 0
    events_unpriced: int = 0
    events_stored: int = 0
    events_duplicate: int = 0
    health_snapshots: int = 0
    # Health snapshots dropped: undecodable, not storable, or over the delivery limit.
    health_invalid: int = 0
    database_retries: int = 0
    # The largest ingest lag seen since the last report: from an event's completion
    # (its proxy finished the request) to the commit that stored it.
    max_lag_ms: float | None = field(default=None, repr=False)

    def observe_commit(self, events: list[RequestEvent], inserted: int, now: datetime) -> None:
        self.events_stored += inserted
        self.events_duplicate += len(events) - inserted
        if events:
            oldest = min(e.completed_at for e in events)
            lag_ms = max(0.0, (now - oldest).total_seconds() * 1000)
            self.max_lag_ms = lag_ms if self.max_lag_ms is None else max(self.max_lag_ms, lag_ms)

    def report(self, instance: str, now: datetime, held_events: int) -> HealthRow:
        """This consumer's ``pipeline_health`` row; starts a new lag window."""
        lag_ms, self.max_lag_ms = self.max_lag_ms, None
        counters = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.repr}
        return HealthRow(
            HealthSnapshot(
                component="consumer",
                instance=instance,
                recorded_at=now,
                buffer_depth=held_events,
                events_published=self.events_stored,
                details=counters,
            ),
            ingest_lag_ms=lag_ms,
        )
