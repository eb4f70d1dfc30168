"""An org's dashboard reads (summary, anomalies, recommendations) and the dismiss actions.

The summary is the ``dashboard_summaries`` row the scheduler's aggregate job wrote,
never an aggregation over ``request_logs`` at request time. Every query names the org
of the path (already checked by :func:`api.access.require`), so another org's id is 404.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from aiohttp import web

from api import audit
from api.body import parse_query
from api.errors import not_found
from api.routes_table import POOL, Route, caller, path_uuid, reply
from api.schemas import (
    Anomaly,
    AnomalyList,
    AnomalyQuery,
    Recommendation,
    RecommendationList,
    RecommendationQuery,
    Summary,
    SummaryQuery,
)

LIST_LIMIT = 100
# The headline figures of a summary with no request yet; the keys are those the
# aggregate job writes (scheduler.summary_stats.totals and scheduler.aggregate).
_ZERO_TOTALS: dict[str, Any] = {
    "requests": 0, "errors": 0, "error_rate": 0.0, "cost_usd": 0.0, "unpriced_requests": 0,
    "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0, "latency_mean_ms": None,
    "latency_p50_ms": None, "latency_p95_ms": None, "ttfb_mean_ms": None,
    "streaming_share": 0.0, "tokeniser_share": 0.0, "p95_over_threshold": False,
    "by_model": [], "by_feature": [], "by_provider": [], "by_task": [], "series": [],
    "pipeline": None,
    "anomaly_detection": {"active": False, "data_since": None, "active_in_hours": None},
}  # fmt: skip


def _org(request: web.Request) -> uuid.UUID:
    return path_uuid(request, "org")


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


async def summary(request: web.Request) -> web.Response:
    org_id = _org(request)
    period = parse_query(request, SummaryQuery).period
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(
            "SELECT period, window_start, window_end, computed_at, data "
            "FROM dashboard_summaries WHERE org_id = $1 AND period = $2",
            org_id,
            period,
        )
        if row is None:
            threshold = await conn.fetchval(
                "SELECT p95_latency_threshold_ms FROM organizations WHERE id = $1", org_id
            )
    if row is not None:
        return reply(Summary(**{**dict(row), "data": _json(row["data"])}))
    data = {
        **_ZERO_TOTALS,
        "p95_threshold_ms": threshold,
        "series_step": "day" if period == "30d" else "hour",
    }
    return reply(
        Summary(period=period, window_start=None, window_end=None, computed_at=None, data=data)
    )


_ANOMALY_COLUMNS = ", ".join(Anomaly.model_fields)
_RECOMMENDATION_COLUMNS = ", ".join(Recommendation.model_fields)


async def anomalies(request: web.Request) -> web.Response:
    org_id = _org(request)
    status = parse_query(request, AnomalyQuery).status
    async with request.app[POOL].acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {_ANOMALY_COLUMNS} FROM anomalies "
            "WHERE org_id = $1 AND ($2::text IS NULL OR status = $2) "
            "ORDER BY detected_at DESC, id LIMIT $3",
            org_id,
            status,
            LIST_LIMIT,
        )
    return reply(AnomalyList(anomalies=[_anomaly(r) for r in rows]))


def _anomaly(row: Any) -> Anomaly:
    return Anomaly(**{**dict(row), "details": _json(row["details"])})


def _recommendation(row: Any) -> Recommendation:
    return Recommendation(**{**dict(row), "details": _json(row["details"])})


async def _dismiss(request: web.Request, table: str, kind: str, columns: str, touch: str = ""
                   ) -> Any:  # fmt: skip
    """Set one of the org's ``table`` rows (a ``kind``) to ``dismissed``, with its audit
    row, in one transaction; return the row's ``columns``. Another org's id is 404."""
    org_id, object_id = _org(request), path_uuid(request, "id")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        before = await conn.fetchval(
            f"SELECT status FROM {table} WHERE id = $1 AND org_id = $2 FOR UPDATE",
            object_id,
            org_id,
        )
        if before is None:
            raise not_found(f"no such {kind}")
        row = await conn.fetchrow(
            f"UPDATE {table} SET status = 'dismissed'{touch} WHERE id = $1 RETURNING {columns}",
            object_id,
        )
        await audit.record(conn, caller(request), org_id=org_id, action=f"{kind}.dismiss",
                           object_type=kind, object_id=object_id,
                           changes={"status": {"old": before, "new": "dismissed"}})  # fmt: skip
    return row


async def dismiss_anomaly(request: web.Request) -> web.Response:
    return reply(_anomaly(await _dismiss(request, "anomalies", "anomaly", _ANOMALY_COLUMNS)))


async def recommendations(request: web.Request) -> web.Response:
    org_id = _org(request)
    status = parse_query(request, RecommendationQuery).status
    async with request.app[POOL].acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {_RECOMMENDATION_COLUMNS} FROM recommendations "
            "WHERE org_id = $1 AND ($2::text IS NULL OR status = $2) "
            "ORDER BY created_at DESC, id LIMIT $3",
            org_id,
            status,
            LIST_LIMIT,
        )
    return reply(RecommendationList(recommendations=[_recommendation(r) for r in rows]))


async def dismiss_recommendation(request: web.Request) -> web.Response:
    row = await _dismiss(request, "recommendations", "recommendation", _RECOMMENDATION_COLUMNS,
                         touch=", updated_at = now()")  # fmt: skip
    return reply(_recommendation(row))


_ORG = "/api/orgs/{org}"

ROUTES_READS = [
    Route("GET", f"{_ORG}/summary", summary,
          "The dashboard summary of a period (zeros and computed_at null before the first)",
          "viewer", response_model=Summary, query_model=SummaryQuery),
    Route("GET", f"{_ORG}/anomalies", anomalies, "The org's anomalies, newest first (100)",
          "viewer", response_model=AnomalyList, query_model=AnomalyQuery),
    Route("POST", f"{_ORG}/anomalies/{{id}}/dismiss", dismiss_anomaly, "Dismiss an anomaly",
          "member", response_model=Anomaly),
    Route("GET", f"{_ORG}/recommendations", recommendations,
          "The org's recommendations, newest first (100)", "viewer",
          response_model=RecommendationList, query_model=RecommendationQuery),
    Route("POST", f"{_ORG}/recommendations/{{id}}/dismiss", dismiss_recommendation,
          "Dismiss a recommendation", "member", response_model=Recommendation),
]  # fmt: skip
