"""An org's reads: /api/me, the stored dashboard summary (zeros before the first), and
anomalies and recommendations with their dismiss actions, scoped to the path's org."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import orjson
import pandas as pd
import pytest

from scheduler import aggregate
from scheduler.rollups import COUNTS, HIST
from tests.api.conftest import ApiClient, AsMember, seed_org_data


async def test_me_for_an_operator_lists_every_org_as_owner(api: ApiClient) -> None:
    org = await api.make_org()
    reply = await api.call("GET", "/api/me")
    assert reply.status == 200
    assert reply.body["operator"] is True
    assert {"id": org["id"], "name": org["name"], "role": "owner"} in reply.body["orgs"]


def _aggregator_keys(period: str) -> set[str]:
    """The data keys the aggregate job writes for an org without rollups."""
    columns = ["bucket_start", "org_id", "feature", "provider", "model", "task_type",
               *COUNTS, *HIST]  # fmt: skip
    empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    now = datetime.now(UTC)
    org = aggregate.Org(str(uuid.uuid4()), 5000, None)
    spans = aggregate.windows(now)
    rows = aggregate.summary_rows(
        {"30d": empty, "7d": empty}, [org], spans, {p: {} for p in spans}, now
    )
    [data] = [orjson.loads(r[4]) for r in rows if r[1] == period]
    return set(data)


@pytest.mark.parametrize("period", ["24h", "7d", "30d"])
async def test_summary_before_the_first_aggregate_is_zeros_with_computed_at_null(
    api: ApiClient, period: str
) -> None:
    org = await api.make_org()
    reply = await api.call("GET", f"/api/orgs/{org['id']}/summary?period={period}")
    assert reply.status == 200
    assert reply.body["period"] == period
    assert reply.body["computed_at"] is None
    data = reply.body["data"]
    assert set(data) == _aggregator_keys(period)
    assert (data["requests"], data["cost_usd"], data["by_model"]) == (0, 0.0, [])
    assert data["p95_threshold_ms"] == org["p95_latency_threshold_ms"]


async def test_summary_is_the_stored_row(api: ApiClient, db: asyncpg.Connection) -> None:
    org = await api.make_org()
    await seed_org_data(db, uuid.UUID(org["id"]))
    reply = await api.call("GET", f"/api/orgs/{org['id']}/summary?period=24h")
    assert reply.status == 200
    assert reply.body["data"] == {"requests": 7}
    assert reply.body["computed_at"] is not None
    # The default period is 24h.
    assert (await api.call("GET", f"/api/orgs/{org['id']}/summary")).body == reply.body


@pytest.mark.parametrize("query", ["period=1y", "period=", "periods=24h"])
async def test_a_bad_summary_query_names_the_field(api: ApiClient, query: str) -> None:
    org = await api.make_org()
    reply = await api.call("GET", f"/api/orgs/{org['id']}/summary?{query}")
    assert reply.status == 400
    assert reply.body["error"]["field"] == query.split("=")[0]


@pytest.mark.parametrize("kind", ["anomalies", "recommendations"])
async def test_list_filter_dismiss_and_audit(
    api: ApiClient, db: asyncpg.Connection, kind: str
) -> None:
    org = await api.make_org()
    seeded = await seed_org_data(db, uuid.UUID(org["id"]))
    object_id = str(seeded["anomaly" if kind == "anomalies" else "recommendation"])
    base = f"/api/orgs/{org['id']}/{kind}"

    listed = await api.call("GET", f"{base}?status=open")
    assert [o["id"] for o in listed.body[kind]] == [object_id]

    dismissed = await api.call("POST", f"{base}/{object_id}/dismiss")
    assert dismissed.status == 200
    assert dismissed.body["status"] == "dismissed"
    assert (await api.call("GET", f"{base}?status=open")).body[kind] == []
    assert [o["id"] for o in (await api.call("GET", base)).body[kind]] == [object_id]
    audit = await db.fetchrow(
        "SELECT action, object_id, changes FROM audit_log WHERE object_id = $1", object_id
    )
    assert audit["action"].endswith(".dismiss")
    assert orjson.loads(audit["changes"]) == {"status": {"old": "open", "new": "dismissed"}}


async def test_anomalies_are_newest_first_with_their_details(
    api: ApiClient, db: asyncpg.Connection
) -> None:
    org = await api.make_org()
    org_id = uuid.UUID(org["id"])
    first = (await seed_org_data(db, org_id))["anomaly"]
    await db.execute("UPDATE anomalies SET status = 'resolved' WHERE id = $1", first)
    second = await db.fetchval(
        "INSERT INTO anomalies (org_id, kind, severity, window_start, window_end, observed,"
        " details, detected_at) SELECT org_id, kind, severity, window_start, window_end,"
        " observed, details, detected_at + interval '1 minute' FROM anomalies WHERE id = $1"
        " RETURNING id",
        first,
    )
    listed = (await api.call("GET", f"/api/orgs/{org['id']}/anomalies")).body["anomalies"]
    assert [a["id"] for a in listed] == [str(second), str(first)]
    assert listed[0]["details"] == {"why": "spend"}
    resolved = await api.call("GET", f"/api/orgs/{org['id']}/anomalies?status=resolved")
    assert [a["id"] for a in resolved.body["anomalies"]] == [str(first)]


@pytest.mark.parametrize("kind", ["anomalies", "recommendations"])
async def test_another_orgs_object_is_404_and_stays_open(
    api: ApiClient, db: asyncpg.Connection, kind: str
) -> None:
    mine, theirs = await api.make_org(), await api.make_org()
    seeded = await seed_org_data(db, uuid.UUID(theirs["id"]))
    object_id = seeded["anomaly" if kind == "anomalies" else "recommendation"]

    for ref in (object_id, uuid.uuid4(), "not-a-uuid"):
        reply = await api.call("POST", f"/api/orgs/{mine['id']}/{kind}/{ref}/dismiss")
        assert reply.status == 404
        assert reply.body["error"]["code"] == "not_found"
    assert await db.fetchval(f"SELECT status FROM {kind} WHERE id = $1", object_id) == "open"


@pytest.mark.parametrize("path", ["summary", "anomalies", "recommendations"])
@pytest.mark.parametrize("org_ref", [str(uuid.uuid4()), "not-a-uuid"])
async def test_an_unknown_org_is_404(api: ApiClient, path: str, org_ref: str) -> None:
    reply = await api.call("GET", f"/api/orgs/{org_ref}/{path}")
    assert reply.status == 404


async def test_reads_need_credentials(api: ApiClient) -> None:
    org = await api.make_org()
    reply = await api.call("GET", f"/api/orgs/{org['id']}/summary", anonymous=True)
    assert reply.status == 401


@pytest.mark.parametrize(
    ("kind", "query"), [("anomalies", "status=closed"), ("recommendations", "status=open&x=1")]
)
async def test_a_bad_list_query_is_400(api: ApiClient, kind: str, query: str) -> None:
    org = await api.make_org()
    reply = await api.call("GET", f"/api/orgs/{org['id']}/{kind}?{query}")
    assert reply.status == 400
    assert reply.body["error"]["field"] in ("status", "x")


async def test_an_oidc_viewer_reads_its_org_only_and_may_not_dismiss(
    as_member: AsMember, db: asyncpg.Connection, api: ApiClient
) -> None:
    """The routes' checks for a dashboard user (the auth tests cover tokens)."""
    mine, theirs = await api.make_org(), await api.make_org()
    seeded = await seed_org_data(db, uuid.UUID(mine["id"]))
    user = await as_member(mine["id"], "viewer")

    me = await user.call("GET", "/api/me")
    assert me.body == {
        "operator": False,
        "email": user.email,
        "orgs": [{"id": mine["id"], "name": mine["name"], "role": "viewer"}],
    }
    assert (await user.call("GET", f"/api/orgs/{mine['id']}/summary")).status == 200
    assert (await user.call("GET", f"/api/orgs/{theirs['id']}/summary")).status == 404
    dismiss = await user.call(
        "POST", f"/api/orgs/{mine['id']}/anomalies/{seeded['anomaly']}/dismiss"
    )
    assert dismiss.status == 403
    assert dismiss.body["error"]["code"] == "forbidden"
    assert (await user.call("GET", "/api/orgs")).status == 403
    assert (await user.call("POST", "/api/orgs", json={"name": "nope"})).status == 403
