"""An org's API keys through the API: listed without secrets, issued once with the raw
value, revoked (another org's key is 404); proxies told on ``lectr.control`` after each
change, or told they will reload when the broker is down; audit rows without the key."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import orjson
import pytest

from api.routes_table import RELOAD_PENDING
from lectr.broker import BrokerNames
from lectr.keys import hash_key
from lectr.settings import Settings
from tests.api.conftest import PEPPER, ApiClient, StartApi

NOBODY_LISTENS = "amqp://guest:guest@127.0.0.1:1/"
KEY_FIELDS = {"id", "display_prefix", "name", "created_at", "revoked_at"}


@pytest.fixture
async def control(
    amqp: aio_pika.abc.AbstractConnection, broker_names: BrokerNames
) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """A queue bound to ``lectr.control``: what the proxies would hear."""
    channel = await amqp.channel()
    exchange = await channel.declare_exchange(
        broker_names.control, aio_pika.ExchangeType.FANOUT, durable=True
    )
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange)
    yield queue
    await channel.close()


async def _heard(queue: aio_pika.abc.AbstractQueue) -> dict:
    message = await queue.get(timeout=5, fail=True)
    await message.ack()
    return orjson.loads(message.body)


async def _audit(db: asyncpg.Connection, org_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT action, object_id, changes FROM audit_log WHERE org_id = $1::uuid "
        "ORDER BY created_at, id",
        org_id,
    )


async def test_issue_shows_the_key_once_lists_without_secrets_tells_proxies_and_audits(
    api: ApiClient, db: asyncpg.Connection, control: aio_pika.abc.AbstractQueue
) -> None:
    org = await api.make_org()
    reply = await api.call("POST", f"/api/orgs/{org['id']}/keys", json={"name": " ci "})

    assert reply.status == 201, reply.body
    key = reply.body
    assert (key["name"], key["revoked_at"], key["proxies"]) == ("ci", None, None)
    assert key["key"].startswith(key["display_prefix"])
    stored = await db.fetchval("SELECT key_hash FROM api_keys WHERE id = $1::uuid", key["id"])
    assert stored == hash_key(key["key"], PEPPER)
    assert await _heard(control) == {"cache": "keys", "org_id": org["id"]}

    listed = await api.call("GET", f"/api/orgs/{org['id']}/keys")
    assert listed.status == 200
    assert [k["id"] for k in listed.body["keys"]] == [key["id"], org["key_id"]]  # newest first
    assert all(set(k) == KEY_FIELDS for k in listed.body["keys"])
    assert key["key"] not in str(listed.body) and stored not in str(listed.body)

    audit = (await _audit(db, org["id"]))[-1]
    assert (audit["action"], audit["object_id"]) == ("key.create", key["id"])
    assert orjson.loads(audit["changes"]) == {"name": "ci", "display_prefix": key["display_prefix"]}
    assert key["key"] not in audit["changes"] and stored not in audit["changes"]


async def test_a_key_without_a_body_has_no_name(api: ApiClient) -> None:
    org = await api.make_org()
    for body in (None, {}):
        reply = await api.call("POST", f"/api/orgs/{org['id']}/keys", json=body)
        assert reply.status == 201
        assert reply.body["name"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": ""}, "name"), ({"name": 5}, "name"), ({"name": "x" * 201}, "name"),
     ({"label": "x"}, "label"), ([], None)],
)  # fmt: skip
async def test_a_bad_key_body_is_400_naming_the_field_and_issues_nothing(
    api: ApiClient, db: asyncpg.Connection, body: object, field: str | None
) -> None:
    org = await api.make_org()
    reply = await api.call("POST", f"/api/orgs/{org['id']}/keys", json=body)
    assert reply.status == 400
    assert reply.body["error"].get("field") == field
    malformed = await api.call("POST", f"/api/orgs/{org['id']}/keys", data=b"{nope")
    assert malformed.body["error"]["code"] == "invalid_json"
    count = await db.fetchval("SELECT count(*) FROM api_keys WHERE org_id = $1::uuid", org["id"])
    assert count == 1


async def test_revoke_is_stored_told_audited_and_idempotent(
    api: ApiClient, db: asyncpg.Connection, control: aio_pika.abc.AbstractQueue
) -> None:
    org = await api.make_org()
    path = f"/api/orgs/{org['id']}/keys/{org['key_id']}"

    revoked = await api.call("DELETE", path)

    assert revoked.status == 200, revoked.body
    assert revoked.body["revoked_at"] is not None and revoked.body["proxies"] is None
    assert await db.fetchval(
        "SELECT revoked_at IS NOT NULL FROM api_keys WHERE id = $1::uuid", org["key_id"]
    )
    assert await _heard(control) == {"cache": "keys", "org_id": org["id"]}
    audit = await _audit(db, org["id"])
    assert (audit[-1]["action"], audit[-1]["object_id"]) == ("key.revoke", org["key_id"])

    again = await api.call("DELETE", path)
    assert again.status == 200
    assert again.body["revoked_at"] == revoked.body["revoked_at"]
    assert len(await _audit(db, org["id"])) == len(audit)  # nothing changed, nothing audited
    listed = (await api.call("GET", f"/api/orgs/{org['id']}/keys")).body["keys"]
    assert listed[0]["revoked_at"] == revoked.body["revoked_at"]


async def test_another_orgs_key_or_an_unknown_id_is_404_and_stays_active(
    api: ApiClient, db: asyncpg.Connection
) -> None:
    mine, theirs = await api.make_org(), await api.make_org()
    for ref in (theirs["key_id"], uuid.uuid4(), "not-a-uuid"):
        reply = await api.call("DELETE", f"/api/orgs/{mine['id']}/keys/{ref}")
        assert reply.status == 404
        assert reply.body["error"]["code"] == "not_found"
    assert await db.fetchval(
        "SELECT revoked_at FROM api_keys WHERE id = $1::uuid", theirs["key_id"]
    ) is None  # fmt: skip
    theirs_listed = await api.call("GET", f"/api/orgs/{mine['id']}/keys")
    assert theirs["key_id"] not in str(theirs_listed.body)


async def test_with_the_broker_down_key_changes_stand_and_say_so(
    start_api: StartApi, lectr_settings: Settings, db: asyncpg.Connection
) -> None:
    api = await start_api(dataclasses.replace(lectr_settings, amqp_url=NOBODY_LISTENS))
    org = await api.make_org()

    created = await api.call("POST", f"/api/orgs/{org['id']}/keys", json={"name": "n"})
    revoked = await api.call("DELETE", f"/api/orgs/{org['id']}/keys/{org['key_id']}")

    assert (created.status, created.body["proxies"]) == (201, RELOAD_PENDING)
    assert (revoked.status, revoked.body["proxies"]) == (200, RELOAD_PENDING)
    rows = await db.fetch("SELECT id, revoked_at FROM api_keys WHERE org_id = $1::uuid", org["id"])
    assert {str(r["id"]): r["revoked_at"] is not None for r in rows} == {
        org["key_id"]: True,
        created.body["id"]: False,
    }
