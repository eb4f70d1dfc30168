"""The event pipeline's health (for the dashboard's degradation banner) and an org's audit.

Pipeline: proxies and consumers serve every org, so the figures are global, the same
for every org that asks. Per proxy instance with a snapshot in the last hour, its latest
``pipeline_health`` row; its counters are totals since that process started, so its
drop rate is over the same span. Per consumer, its latest row in the hour (an idle
consumer's lag is null); ``ingest_lag_ms`` is the largest of them.

Audit: newest first, keyset-paged on ``(created_at, id)`` (served by the
``(org_id, created_at)`` index); the cursor (:mod:`api.cursor`) is opaque to callers.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from api import cursor
from api.body import parse_query
from api.routes_table import POOL, Route, path_uuid, reply
from api.schemas_settings import (
    AuditEntry,
    AuditPage,
    AuditQuery,
    ConsumerPipeline,
    Pipeline,
    ProxyPipeline,
)

_ORG = "/api/orgs/{org}"
RECENT = "1 hour"

_LATEST_SQL = f"""
SELECT DISTINCT ON (instance) instance, recorded_at, buffer_depth, events_published,
       events_dropped, publish_failures, ingest_lag_ms
FROM pipeline_health
WHERE component = $1 AND recorded_at >= now() - interval '{RECENT}'
ORDER BY instance, recorded_at DESC, id DESC
"""


def _drop_rate(published: int | None, dropped: int | None) -> float:
    published, dropped = published or 0, dropped or 0
    return round(dropped / (published + dropped), 6) if dropped else 0.0


async def pipeline(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        proxy_rows = await conn.fetch(_LATEST_SQL, "proxy")
        consumer_rows = await conn.fetch(_LATEST_SQL, "consumer")
    proxies = [
        ProxyPipeline(**{k: v for k, v in dict(r).items() if k != "ingest_lag_ms"},
                      drop_rate=_drop_rate(r["events_published"], r["events_dropped"]))
        for r in proxy_rows
    ]  # fmt: skip
    consumers = [
        ConsumerPipeline(
            instance=r["instance"], recorded_at=r["recorded_at"], ingest_lag_ms=r["ingest_lag_ms"]
        )
        for r in consumer_rows
    ]
    lags = [c.ingest_lag_ms for c in consumers if c.ingest_lag_ms is not None]
    return reply(Pipeline(proxies=proxies, consumers=consumers, ingest_lag_ms=max(lags or [None])))


def _entry(row: Any) -> AuditEntry:
    changes = row["changes"]
    if isinstance(changes, str | bytes):
        changes = orjson.loads(changes)
    return AuditEntry(**{**dict(row), "changes": changes})


async def audit_log(request: web.Request) -> web.Response:
    org_id = path_uuid(request, "org")
    query = parse_query(request, AuditQuery)
    after = cursor.decode(query.cursor) if query.cursor else (None, None)
    async with request.app[POOL].acquire() as conn:
        rows = await conn.fetch(
            "SELECT id, actor, action, object_type, object_id, changes, created_at "
            "FROM audit_log WHERE org_id = $1 "
            "AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid)) "
            "ORDER BY created_at DESC, id DESC LIMIT $4",
            org_id,
            *after,
            query.limit + 1,
        )
    page = rows[: query.limit]
    more = len(rows) > query.limit
    last = page[-1] if page else None
    next_cursor = cursor.encode(last["created_at"], last["id"]) if more and last else None
    return reply(AuditPage(entries=[_entry(r) for r in page], next_cursor=next_cursor))


ROUTES_PIPELINE = [
    Route("GET", f"{_ORG}/pipeline", pipeline,
          "The event pipeline's health per proxy and consumer (global; the last hour)",
          "viewer", response_model=Pipeline),
    Route("GET", f"{_ORG}/audit", audit_log, "The org's audit log, newest first (paged)",
          "admin", response_model=AuditPage, query_model=AuditQuery),
]  # fmt: skip
