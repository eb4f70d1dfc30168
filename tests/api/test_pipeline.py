"""The pipeline health the degradation banner reads (global, the last hour, latest
snapshot per instance) and an org's audit log, newest first in opaque keyset pages."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta as ago

import asyncpg
import pytest

from tests.api.conftest import ApiClient


async def _snapshot(db: asyncpg.Connection, component: str, instance: str, age: ago,
                    **values: object) -> None:  # fmt: skip
    columns = ", ".join(values)
    marks = ", ".join(f"${i}" for i in range(4, 4 + len(values)))
    await db.execute(
        f"INSERT INTO pipeline_health (recorded_at, component, instance"
        f"{', ' if values else ''}{columns}) VALUES (now() - $1::interval, $2, $3"
        f"{', ' if values else ''}{marks})",
        age,
        component,
        instance,
        *values.values(),
    )


async def test_pipeline_shows_each_recent_instances_latest_snapshot_and_lag(
    api: ApiClient, db: asyncpg.Connection
) -> None:
    run = uuid.uuid4().hex[:8]
    busy, idle, gone = f"proxy-busy-{run}", f"proxy-idle-{run}", f"proxy-gone-{run}"
    lagging, resting = f"consumer-lag-{run}", f"consumer-idle-{run}"
    await _snapshot(db, "proxy", busy, ago(minutes=5), buffer_depth=1, events_published=10,
                    events_dropped=0, publish_failures=0)  # fmt: skip
    await _snapshot(db, "proxy", busy, ago(seconds=10), buffer_depth=400, events_published=900,
                    events_dropped=100, publish_failures=3)  # fmt: skip
    await _snapshot(db, "proxy", idle, ago(seconds=30), buffer_depth=0, events_published=50,
                    events_dropped=0, publish_failures=0)  # fmt: skip
    await _snapshot(db, "proxy", gone, ago(hours=2), buffer_depth=9, events_published=1,
                    events_dropped=9, publish_failures=0)  # fmt: skip
    await _snapshot(db, "consumer", lagging, ago(seconds=20), ingest_lag_ms=1500.0)
    await _snapshot(db, "consumer", resting, ago(minutes=1), ingest_lag_ms=99_000.0)
    await _snapshot(db, "consumer", resting, ago(seconds=5))  # idle now: no lag measured

    org = await api.make_org()
    reply = await api.call("GET", f"/api/orgs/{org['id']}/pipeline")

    assert reply.status == 200
    proxies = {p["instance"]: p for p in reply.body["proxies"]}
    assert gone not in proxies
    assert {k: v for k, v in proxies[busy].items() if k != "recorded_at"} == {
        "instance": busy, "buffer_depth": 400, "events_published": 900, "events_dropped": 100,
        "publish_failures": 3, "drop_rate": 0.1,
    }  # fmt: skip
    assert proxies[idle]["drop_rate"] == 0.0
    consumers = {c["instance"]: c["ingest_lag_ms"] for c in reply.body["consumers"]}
    assert (consumers[lagging], consumers[resting]) == (1500.0, None)
    assert reply.body["ingest_lag_ms"] >= 1500.0
    # Global figures: every org sees the same.
    other = await api.make_org()
    again = await api.call("GET", f"/api/orgs/{other['id']}/pipeline")
    assert {p["instance"] for p in again.body["proxies"]} >= {busy, idle}


async def test_audit_pages_newest_first_through_every_entry_of_the_org_only(
    api: ApiClient, db: asyncpg.Connection
) -> None:
    org, other = await api.make_org(), await api.make_org()
    for threshold in range(100, 105):
        await api.call("PATCH", f"/api/orgs/{org['id']}/settings",
                       json={"p95_latency_threshold_ms": threshold})  # fmt: skip
    await api.call("POST", f"/api/orgs/{other['id']}/keys", json={})

    seen, cursor, pages = [], None, 0
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        reply = await api.call("GET", f"/api/orgs/{org['id']}/audit?{query}")
        assert reply.status == 200, reply.body
        assert len(reply.body["entries"]) <= 2
        seen += reply.body["entries"]
        pages += 1
        cursor = reply.body["next_cursor"]
        if cursor is None:
            break

    expected = await db.fetch(
        "SELECT id FROM audit_log WHERE org_id = $1::uuid ORDER BY created_at DESC, id DESC",
        org["id"],
    )
    assert [e["id"] for e in seen] == [str(r["id"]) for r in expected]
    assert (len(seen), pages) == (6, 3)
    assert [e["action"] for e in seen] == ["settings.update"] * 5 + ["org.create"]
    assert seen[0]["changes"] == {"p95_latency_threshold_ms": {"old": 103, "new": 104}}
    assert set(seen[0]) == {"id", "actor", "action", "object_type", "object_id", "changes",
                            "created_at"}  # fmt: skip
    everything = await api.call("GET", f"/api/orgs/{org['id']}/audit")
    assert [e["id"] for e in everything.body["entries"]] == [e["id"] for e in seen]
    assert everything.body["next_cursor"] is None


NAIVE_TIME = b'["2026-01-01T00:00:00", "00000000-0000-0000-0000-000000000000"]'


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=0", "limit"), ("limit=201", "limit"), ("limit=ten", "limit"),
     ("cursor=!!!", "cursor"), (f"cursor={_b64(b'[1, 2]')}", "cursor"),
     ("cursor=" + _b64(NAIVE_TIME), "cursor"), ("page=2", "page")],
)  # fmt: skip
async def test_a_bad_audit_query_is_400_naming_the_field(
    api: ApiClient, query: str, field: str
) -> None:
    org = await api.make_org()
    reply = await api.call("GET", f"/api/orgs/{org['id']}/audit?{query}")
    assert reply.status == 400
    assert reply.body["error"]["field"] == field
