"""An org's request log, page by page: ``/requests`` (every row) and ``/failures`` (errors).

Keyset pagination, newest first: ``ORDER BY created_at DESC, id DESC`` with the last
row's ``(created_at, id)`` as the cursor, so a page costs the same however deep it is
and rows with equal ``created_at`` are neither skipped nor repeated. Every query names
the org and bounds ``created_at`` on both sides (``since`` defaults to 30 days before
``until``, which defaults to now), so it is served by the ``(org_id, created_at)`` index
of only the daily partitions in that window. The WHERE clause holds only the filters
given, so the plan never carries ``$n IS NULL OR ...`` branches.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from api import cursor as cursors
from api.body import parse_query
from api.errors import ApiError
from api.routes_table import POOL, Route, path_uuid, reply
from api.schemas_requests import (
    FailurePage,
    FailureQuery,
    RequestLog,
    RequestPage,
    RequestQuery,
)

DEFAULT_WINDOW = timedelta(days=30)
COLUMNS = ", ".join(RequestLog.model_fields)
# What counts as an error: an HTTP error, no response at all (0), or a failure the proxy
# categorised (a stream cut short after a 200, say).
ERROR_SQL = "(status_code >= 400 OR status_code = 0 OR error_category IS NOT NULL)"
_STATUS_SQL = {
    "2xx": "status_code BETWEEN 200 AND 299",
    "4xx": "status_code BETWEEN 400 AND 499",
    "5xx": "status_code BETWEEN 500 AND 599",
    "error": ERROR_SQL,
}
# Filters compared for equality: query parameter -> column.
_EQUALS = {"feature": "feature", "provider": "provider", "task": "task_type",
           "streaming": "streaming"}  # fmt: skip


def window(query: FailureQuery, now: datetime) -> tuple[datetime, datetime]:
    """``[since, until)``: ``until`` defaults to now, ``since`` to 30 days before it."""
    until = query.until or now
    try:
        since = query.since or until - DEFAULT_WINDOW
    except OverflowError:  # until is within the window of year 1
        raise ApiError("invalid_request", "until: too early for the default since; give since",
                       field="until") from None  # fmt: skip
    if since >= until:
        raise ApiError("invalid_request", "since: must be before until", field="since")
    return since, until


def page_sql(
    org_id: uuid.UUID, query: FailureQuery, *, errors_only: bool, now: datetime
) -> tuple[str, list[Any]]:
    """The SELECT of one page (``limit + 1`` rows, to know whether another follows)."""
    since, until = window(query, now)
    args: list[Any] = [org_id, since, until]
    where = ["org_id = $1", "created_at >= $2", "created_at < $3"]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if query.cursor is not None:
        at, row_id = cursors.decode(query.cursor)
        # The first bound lets the index and partition pruning use the cursor too.
        where.append(f"created_at <= {arg(at)}")
        where.append(f"(created_at, id) < ({arg(at)}, {arg(row_id)})")
    for name, column in _EQUALS.items():
        value = getattr(query, name)
        if value is not None:
            where.append(f"{column} = {arg(value)}")
    if query.model is not None:
        model = arg(query.model)
        where.append(f"(requested_model = {model} OR actual_model = {model} "
                     f"OR response_model = {model})")  # fmt: skip
    status = getattr(query, "status", None)
    if status is not None:
        where.append(_STATUS_SQL[status])
    if errors_only:
        where.append(ERROR_SQL)
    sql = (
        f"SELECT {COLUMNS} FROM request_logs WHERE {' AND '.join(where)} "
        f"ORDER BY created_at DESC, id DESC LIMIT {arg(query.limit + 1)}"
    )
    return sql, args


async def _page(
    request: web.Request, query: FailureQuery, *, errors_only: bool
) -> tuple[list[RequestLog], str | None]:
    org_id = path_uuid(request, "org")
    sql, args = page_sql(org_id, query, errors_only=errors_only, now=datetime.now(UTC))
    async with request.app[POOL].acquire() as conn:
        rows = await conn.fetch(sql, *args)
    logs = [RequestLog.model_validate(dict(r)) for r in rows[: query.limit]]
    more = len(rows) > query.limit
    next_cursor = cursors.encode(logs[-1].created_at, logs[-1].id) if more else None
    return logs, next_cursor


async def requests(request: web.Request) -> web.Response:
    logs, next_cursor = await _page(request, parse_query(request, RequestQuery), errors_only=False)
    return reply(RequestPage(requests=logs, next_cursor=next_cursor))


async def failures(request: web.Request) -> web.Response:
    logs, next_cursor = await _page(request, parse_query(request, FailureQuery), errors_only=True)
    return reply(FailurePage(failures=logs, next_cursor=next_cursor))


_ORG = "/api/orgs/{org}"

ROUTES_REQUESTS = [
    Route("GET", f"{_ORG}/requests", requests,
          "The org's request log, newest first, keyset-paged (next_cursor), filtered",
          "viewer", response_model=RequestPage, query_model=RequestQuery),
    Route("GET", f"{_ORG}/failures", failures,
          "The org's failed requests (status >= 400, 0, or an error_category), newest first",
          "viewer", response_model=FailurePage, query_model=FailureQuery),
]  # fmt: skip
