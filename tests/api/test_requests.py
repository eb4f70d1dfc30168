"""The request log reads: keyset pages newest first that visit every row once, each
filter, the 30-day default window, errors as 400 naming the parameter, and a plan that
uses the (org_id, created_at) index of only the partitions in the window."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import asyncpg
import pytest

from api import cursor
from api.routes_requests import page_sql
from api.schemas_requests import RequestQuery
from consumers.writer import insert_events
from schema.events import RequestEvent
from schema.partitions import day_bounds, ensure_partitions, partition_name
from tests.api.conftest import ApiClient

NOW = datetime.now(UTC).replace(microsecond=0)


def event(org_id: uuid.UUID, minutes_ago: float, **changes: Any) -> RequestEvent:
    """A successful gpt-4o-mini chat request ``minutes_ago``; ``changes`` replace fields."""
    at = NOW - timedelta(minutes=minutes_ago)
    base = RequestEvent(
        id=uuid.uuid4(), created_at=at, completed_at=at + timedelta(milliseconds=300),
        org_id=org_id, api_key_id=uuid.uuid4(), provider="openai",
        endpoint="/v1/chat/completions", streaming=False, status_code=200, latency_ms=300.0,
        proxy_instance="proxy-test", requested_model="gpt-4o-mini", actual_model="gpt-4o-mini",
        response_model="gpt-4o-mini-2024-07-18", input_tokens=10, output_tokens=5,
        token_source="provider", cost_usd=Decimal("0.00001"), feature="chat",
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


async def new_org(api: ApiClient) -> uuid.UUID:
    return uuid.UUID((await api.make_org())["id"])


def newest_first(events: list[RequestEvent]) -> list[str]:
    ordered = sorted(events, key=lambda e: (e.created_at, e.id), reverse=True)
    return [str(e.id) for e in ordered]


async def walk(api: ApiClient, path: str, key: str, **params: Any) -> list[list[str]]:
    """Every page of ``path`` following next_cursor; the ids of each page."""
    pages: list[list[str]] = []
    next_cursor = None
    while True:
        query = {**params, **({"cursor": next_cursor} if next_cursor else {})}
        reply = await api.call("GET", f"{path}?{urlencode(query)}")
        assert reply.status == 200, reply.body
        pages.append([row["id"] for row in reply.body[key]])
        next_cursor = reply.body["next_cursor"]
        if next_cursor is None:
            return pages
        assert len(pages) < 50, "the cursor does not advance"


async def test_pages_visit_every_row_once_newest_first_including_ties(
    api: ApiClient, db: asyncpg.Connection
) -> None:
    mine, theirs = await new_org(api), await new_org(api)
    events = [event(mine, m) for m in (1, 2, 3, 5, 8, 13, 21)]
    events += [event(mine, 4) for _ in range(6)]  # six rows with the same created_at
    others = [event(theirs, m) for m in (1, 4, 6)]
    await insert_events(db, events + others)

    pages = await walk(api, f"/api/orgs/{mine}/requests", "requests", limit=4)
    assert [len(p) for p in pages] == [4, 4, 4, 1]
    assert [i for page in pages for i in page] == newest_first(events)
    # Page boundaries fall inside the tie (rows 4..9 share one created_at).
    ties = {str(e.id) for e in events[7:]}
    assert pages[0][-1] in ties and pages[2][0] in ties
    # Exactly a page of rows: no cursor to an empty page.
    assert len(await walk(api, f"/api/orgs/{mine}/requests", "requests", limit=13)) == 1


async def test_a_row_carries_the_request_log_columns_and_nothing_else(
    api: ApiClient, db: asyncpg.Connection
) -> None:
    org = await new_org(api)
    stored = event(org, 1, task_type="summarise", cost_usd=None)
    await insert_events(db, [stored])
    [row] = (await api.call("GET", f"/api/orgs/{org}/requests")).body["requests"]
    columns = await db.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'request_logs'"
    )
    assert set(row) == {c["column_name"] for c in columns}
    assert row["id"] == str(stored.id) and row["org_id"] == str(org)
    assert datetime.fromisoformat(row["created_at"]) == stored.created_at
    assert (row["task_type"], row["cost_usd"], row["input_tokens"]) == ("summarise", None, 10)


FILTER_CASES: dict[str, tuple[dict[str, str], Callable[[RequestEvent], bool]]] = {
    "feature": ({"feature": "search"}, lambda e: e.feature == "search"),
    "model requested": ({"model": "asked"}, lambda e: "asked" in _models(e)),
    "model actual": ({"model": "routed"}, lambda e: "routed" in _models(e)),
    "model response": ({"model": "answered"}, lambda e: "answered" in _models(e)),
    "provider": ({"provider": "anthropic"}, lambda e: e.provider == "anthropic"),
    "task": ({"task": "summarise"}, lambda e: e.task_type == "summarise"),
    "streaming true": ({"streaming": "true"}, lambda e: e.streaming),
    "streaming false": ({"streaming": "false"}, lambda e: not e.streaming),
    "2xx": ({"status": "2xx"}, lambda e: 200 <= e.status_code < 300),
    "4xx": ({"status": "4xx"}, lambda e: 400 <= e.status_code < 500),
    "5xx": ({"status": "5xx"}, lambda e: 500 <= e.status_code < 600),
    "error": ({"status": "error"}, lambda e: _is_error(e)),
    "two at once": ({"provider": "openai", "streaming": "true"},
                    lambda e: e.provider == "openai" and e.streaming),
}  # fmt: skip


def _models(e: RequestEvent) -> set[str | None]:
    return {e.requested_model, e.actual_model, e.response_model}


def _is_error(e: RequestEvent) -> bool:
    return e.status_code >= 400 or e.status_code == 0 or e.error_category is not None


def varied(org: uuid.UUID) -> list[RequestEvent]:
    """Rows that differ in every filtered column, one minute apart."""
    changes: list[dict[str, Any]] = [
        {"feature": "search"},
        {"requested_model": "asked", "actual_model": "routed"},
        {"response_model": "answered"},
        {"provider": "anthropic", "streaming": True},
        {"task_type": "summarise", "streaming": True},
        {"status_code": 429, "error_category": "rate_limited", "error_source": "provider"},
        {"status_code": 503, "error_category": "upstream_error", "error_source": "provider"},
        {"status_code": 0, "error_category": "timeout", "error_source": "network"},
        {"status_code": 200, "error_category": "upstream_disconnect", "streaming": True,
         "error_source": "network"},
        {},
    ]  # fmt: skip
    return [event(org, i + 1, **c) for i, c in enumerate(changes)]


@pytest.mark.parametrize("case", list(FILTER_CASES))
async def test_each_filter_keeps_exactly_its_rows(
    api: ApiClient, db: asyncpg.Connection, case: str
) -> None:
    org, other = await new_org(api), await new_org(api)
    events = varied(org)
    await insert_events(db, events + varied(other))
    params, keep = FILTER_CASES[case]
    reply = await api.call("GET", f"/api/orgs/{org}/requests?{urlencode(params)}")
    assert reply.status == 200, reply.body
    expected = newest_first([e for e in events if keep(e)])
    assert expected, "the case selects something"
    assert [r["id"] for r in reply.body["requests"]] == expected


async def test_since_and_until_bound_the_window_and_it_defaults_to_30_days(
    api: ApiClient, db: asyncpg.Connection
) -> None:
    org = await new_org(api)
    days = [event(org, d * 24 * 60) for d in (0.5, 2, 10, 29, 31, 45)]
    await insert_events(db, days)
    base = f"/api/orgs/{org}/requests"

    default = (await api.call("GET", base)).body["requests"]
    assert [r["id"] for r in default] == newest_first(days[:4])

    since, until = (NOW - timedelta(days=40)).isoformat(), (NOW - timedelta(days=5)).isoformat()
    bounded = await api.call("GET", f"{base}?{urlencode({'since': since, 'until': until})}")
    assert [r["id"] for r in bounded.body["requests"]] == newest_first(days[2:5])
    # until alone: 30 days before it. An unescaped "+" (a space once decoded) still works.
    until = (NOW - timedelta(days=20)).isoformat().replace("+00:00", " 00:00")
    only_until = await api.call("GET", f"{base}?{urlencode({'until': until})}")
    assert only_until.status == 200, only_until.body
    assert [r["id"] for r in only_until.body["requests"]] == newest_first(days[3:6])
    # "until" is exclusive: a row at exactly until is left out.
    at = days[1].created_at.isoformat()
    assert days[1].id not in {
        r["id"]
        for r in (await api.call("GET", f"{base}?{urlencode({'until': at})}")).body["requests"]
    }


async def test_failures_are_the_errors_with_category_and_source(
    api: ApiClient, db: asyncpg.Connection
) -> None:
    org, other = await new_org(api), await new_org(api)
    events = varied(org)
    await insert_events(db, events + varied(other))
    pages = await walk(api, f"/api/orgs/{org}/failures", "failures", limit=2)
    assert [i for page in pages for i in page] == newest_first([e for e in events if _is_error(e)])

    reply = await api.call("GET", f"/api/orgs/{org}/failures?provider=openai&streaming=true")
    [row] = reply.body["failures"]
    assert (row["status_code"], row["error_category"], row["error_source"]) == (
        200, "upstream_disconnect", "network",
    )  # fmt: skip
    # /failures has no status filter: it is errors only.
    bad = await api.call("GET", f"/api/orgs/{org}/failures?status=2xx")
    assert (bad.status, bad.body["error"]["field"]) == (400, "status")


@pytest.mark.parametrize("path", ["requests", "failures"])
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        (f"cursor={cursor.encode(datetime(2026, 1, 1), uuid.uuid4())}", "cursor"),  # naive
        ("cursor=" + "bm90fGF8dXVpZA", "cursor"),  # "not|a|uuid"
        ("since=yesterday", "since"),
        ("since=2026-01-01T00:00:00", "since"),  # no offset
        ("until=2026-13-01T00:00:00Z", "until"),
        ("since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "since"),
        ("streaming=maybe", "streaming"),
        ("feature=", "feature"),
        ("colour=red", "colour"),
    ],
)
async def test_a_bad_parameter_is_400_naming_it(
    api: ApiClient, path: str, query: str, field: str
) -> None:
    org = await new_org(api)
    reply = await api.call("GET", f"/api/orgs/{org}/{path}?{query}")
    assert reply.status == 400, reply.body
    assert reply.body["error"]["field"] == field


async def test_limit_bounds_and_a_bad_status_filter(api: ApiClient, db: asyncpg.Connection) -> None:
    org = await new_org(api)
    await insert_events(db, [event(org, m) for m in range(1, 4)])
    one = await api.call("GET", f"/api/orgs/{org}/requests?limit=1")
    assert (len(one.body["requests"]), one.body["next_cursor"] is not None) == (1, True)
    most = await api.call("GET", f"/api/orgs/{org}/requests?limit=200")
    assert (len(most.body["requests"]), most.body["next_cursor"]) == (3, None)
    bad = await api.call("GET", f"/api/orgs/{org}/requests?status=3xx")
    assert (bad.status, bad.body["error"]["field"]) == (400, "status")


@pytest.mark.parametrize("path", ["requests", "failures"])
async def test_credentials_and_org_checks(
    api: ApiClient, db: asyncpg.Connection, path: str
) -> None:
    org = await new_org(api)
    await insert_events(db, [event(org, 1, status_code=500)])
    assert (await api.call("GET", f"/api/orgs/{org}/{path}", anonymous=True)).status == 401
    for ref in (uuid.uuid4(), "not-a-uuid"):
        assert (await api.call("GET", f"/api/orgs/{ref}/{path}")).status == 404
    # Another org's cursor only moves the window: it never shows that org's rows.
    theirs = await new_org(api)
    foreign = cursor.encode(NOW + timedelta(minutes=1), uuid.uuid4())
    reply = await api.call("GET", f"/api/orgs/{theirs}/{path}?cursor={foreign}")
    assert (reply.status, reply.body[path]) == (200, [])


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


@pytest.mark.parametrize("with_cursor", [False, True])
async def test_a_page_uses_the_org_index_of_only_the_windows_partitions(
    db: asyncpg.Connection, with_cursor: bool
) -> None:
    today = NOW.date()
    await ensure_partitions(db, [today - timedelta(days=1), today, today + timedelta(days=1)])
    since, until = day_bounds(today)
    query = RequestQuery(
        since=since,
        until=until,
        feature="chat",
        cursor=cursor.encode(until - timedelta(hours=1), uuid.uuid4()) if with_cursor else None,
    )
    sql, args = page_sql(uuid.uuid4(), query, errors_only=False, now=NOW)
    async with db.transaction():
        # A fresh test table is tiny, so the planner would read it whole; at production
        # sizes it picks the index. What this proves is that the index applies at all.
        await db.execute("SET LOCAL enable_seqscan = off")
        [plan] = json.loads(await db.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))
    nodes = _plan_nodes(plan["Plan"])
    scanned = {n["Relation Name"] for n in nodes if "Relation Name" in n}
    assert scanned == {partition_name(today)}, nodes
    indexes = [n.get("Index Name", "") for n in nodes if "Relation Name" in n]
    assert all("org_id_created_at" in name for name in indexes), indexes
