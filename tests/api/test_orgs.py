"""Operators' routes on organisations: create (with its first key, once), list, change
status and limits (proxies told, or told they will reload), delete with all its data;
each change audited in its own transaction."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import aio_pika
import asyncpg
import orjson
import pytest

from api.routes_table import RELOAD_PENDING
from lectr.broker import BrokerNames
from lectr.keys import hash_key
from lectr.settings import Settings
from tests.api.conftest import PEPPER, ApiClient, StartApi, count_rows, seed_org_data

NOBODY_LISTENS = "amqp://guest:guest@127.0.0.1:1/"


async def _audit(db: asyncpg.Connection, org_id: object) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT actor, action, object_type, object_id, changes FROM audit_log "
        "WHERE org_id = $1::uuid ORDER BY created_at",
        str(org_id),
    )


async def test_create_answers_201_with_the_org_and_its_first_key_once(
    api: ApiClient, db: asyncpg.Connection, org_name
) -> None:
    name = org_name()
    reply = await api.call("POST", "/api/orgs", json={"name": f"  {name} "})

    assert reply.status == 201
    org = reply.body
    assert (org["name"], org["status"], org["rate_limit_rpm"]) == (name, "active", None)
    stored = await db.fetchval(
        "SELECT key_hash FROM api_keys WHERE id = $1", uuid.UUID(org["key_id"])
    )
    assert stored == hash_key(org["key"], PEPPER)
    listed = await api.call("GET", "/api/orgs")
    assert [o for o in listed.body["orgs"] if o["id"] == org["id"]] == [
        {k: v for k, v in org.items() if k not in ("key", "key_id")}
    ]
    [row] = await _audit(db, org["id"])
    assert (row["actor"], row["action"], row["object_id"]) == ("operator", "org.create", org["id"])
    assert orjson.loads(row["changes"]) == {"name": name}
    assert org["key"] not in row["changes"]


async def test_a_duplicate_name_is_409(api: ApiClient) -> None:
    org = await api.make_org()
    reply = await api.call("POST", "/api/orgs", json={"name": org["name"]})
    assert reply.status == 409
    assert reply.body["error"]["code"] == "conflict"


async def test_patch_changes_status_and_limits_audits_and_tells_the_proxies(
    api: ApiClient,
    db: asyncpg.Connection,
    amqp: aio_pika.abc.AbstractConnection,
    broker_names: BrokerNames,
) -> None:
    org = await api.make_org()
    channel = await amqp.channel()
    exchange = await channel.declare_exchange(
        broker_names.control, aio_pika.ExchangeType.FANOUT, durable=True
    )
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange)

    reply = await api.call("PATCH", f"/api/orgs/{org['id']}",
                           json={"status": "disabled", "rate_limit_rpm": 60})  # fmt: skip

    assert reply.status == 200, reply.body
    assert (reply.body["status"], reply.body["rate_limit_rpm"]) == ("disabled", 60)
    assert reply.body["max_concurrent_streams"] is None
    assert reply.body["proxies"] is None
    row = await db.fetchrow(
        "SELECT status, rate_limit_rpm FROM organizations WHERE id = $1", uuid.UUID(org["id"])
    )
    assert tuple(row) == ("disabled", 60)
    message = await queue.get(timeout=5, fail=True)
    assert orjson.loads(message.body) == {"cache": "orgs", "org_id": org["id"]}
    audit = await _audit(db, org["id"])
    assert audit[-1]["action"] == "org.update"
    assert orjson.loads(audit[-1]["changes"]) == {
        "status": {"old": "active", "new": "disabled"},
        "rate_limit_rpm": {"old": None, "new": 60},
    }
    await channel.close()

    cleared = await api.call("PATCH", f"/api/orgs/{org['id']}", json={"rate_limit_rpm": None})
    assert (cleared.body["rate_limit_rpm"], cleared.body["status"]) == (None, "disabled")


async def test_with_the_broker_down_the_change_stands_and_the_response_says_so(
    start_api: StartApi, lectr_settings: Settings, db: asyncpg.Connection
) -> None:
    api = await start_api(dataclasses.replace(lectr_settings, amqp_url=NOBODY_LISTENS))
    org = await api.make_org()

    reply = await api.call("PATCH", f"/api/orgs/{org['id']}", json={"max_concurrent_streams": 3})

    assert reply.status == 200
    assert reply.body["proxies"] == RELOAD_PENDING
    assert await db.fetchval(
        "SELECT max_concurrent_streams FROM organizations WHERE id = $1", uuid.UUID(org["id"])
    ) == 3  # fmt: skip
    deleted = await api.call("DELETE", f"/api/orgs/{org['id']}")
    assert deleted.status == 200
    assert deleted.body["proxies"] == RELOAD_PENDING


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "paused"}, "status"),
        ({"status": None}, "status"),
        ({"rate_limit_rpm": 0}, "rate_limit_rpm"),
        ({"rate_limit_rpm": "60"}, "rate_limit_rpm"),
        ({"rate_limit_rpm": 1.5}, "rate_limit_rpm"),
        ({"max_concurrent_streams": -1}, "max_concurrent_streams"),
        ({"name": "renamed"}, "name"),
    ],
)
async def test_a_bad_patch_names_the_field_and_changes_nothing(
    api: ApiClient, db: asyncpg.Connection, body: dict, field: str
) -> None:
    org = await api.make_org()
    reply = await api.call("PATCH", f"/api/orgs/{org['id']}", json=body)
    assert reply.status == 400
    assert reply.body["error"]["field"] == field
    assert len(await _audit(db, org["id"])) == 1  # the create only


@pytest.mark.parametrize("org_ref", [str(uuid.uuid4()), "not-a-uuid"])
@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_an_unknown_org_is_404(api: ApiClient, method: str, org_ref: str) -> None:
    reply = await api.call(method, f"/api/orgs/{org_ref}", json={"status": "active"})
    assert reply.status == 404
    assert reply.body["error"]["code"] == "not_found"


async def test_delete_removes_the_org_and_all_its_data_and_keeps_its_audit_trail(
    api: ApiClient, db: asyncpg.Connection
) -> None:
    doomed, kept = await api.make_org(), await api.make_org()
    doomed_id, kept_id = uuid.UUID(doomed["id"]), uuid.UUID(kept["id"])
    for org_id in (doomed_id, kept_id):
        await seed_org_data(db, org_id)
    before_kept = await count_rows(db, kept_id)

    reply = await api.call("DELETE", f"/api/orgs/{doomed['id']}")

    assert (reply.status, reply.body) == (
        200,
        {"id": doomed["id"], "deleted": True, "proxies": None},
    )
    assert set((await count_rows(db, doomed_id)).values()) == {0}
    assert await db.fetchval("SELECT count(*) FROM organizations WHERE id = $1", doomed_id) == 0
    assert await count_rows(db, kept_id) == before_kept
    assert set(before_kept.values()) == {1}
    assert [r["action"] for r in await _audit(db, doomed_id)] == ["org.create", "org.delete"]
    again = await api.call("GET", f"/api/orgs/{doomed['id']}/summary")
    assert again.status == 404


async def test_the_list_holds_every_org(api: ApiClient) -> None:
    made = [await api.make_org() for _ in range(2)]
    listed = await api.call("GET", "/api/orgs")
    assert {o["id"] for o in made} <= {o["id"] for o in listed.body["orgs"]}


async def test_orgs_concurrently_created_with_one_name_make_one_org(api: ApiClient, org_name):
    name = org_name()
    replies = await asyncio.gather(
        *(api.call("POST", "/api/orgs", json={"name": name}) for _ in range(3))
    )
    assert sorted(r.status for r in replies) == [201, 409, 409]
