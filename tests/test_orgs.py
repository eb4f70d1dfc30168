"""`lectr org` and `lectr key`: keys work, are shown once and are never stored raw."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import asyncpg
import pytest

from lectr.broker import BrokerNames
from lectr.keys import KEY_PREFIX, verify_key
from schema.control import ControlMessage
from tests.support.cli import run_lectr, run_lectr_json

PEPPER_VAR = "LECTR_KEY_PEPPER"


def _name() -> str:
    return f"acme-{uuid.uuid4().hex[:8]}"


async def _all_text_in_database(db: asyncpg.Connection) -> str:
    """Every row of every table, as text: what an attacker with a dump would see."""
    tables = await db.fetch(
        "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public'"
    )
    parts = []
    for (table,) in tables:
        rows = await db.fetch(f"SELECT t::text FROM {table} t")
        parts.extend(r[0] for r in rows)
    return "\n".join(parts)


async def test_created_key_verifies_and_is_stored_only_as_a_keyed_hash(
    db: asyncpg.Connection, lectr_env: dict[str, str]
) -> None:
    name = _name()
    created = await asyncio.to_thread(run_lectr_json, "org", "create", name, env=lectr_env)
    assert created["org_name"] == name
    key = created["key"]
    assert key.startswith(KEY_PREFIX) and len(key) >= 40

    stored = await db.fetchrow(
        "SELECT k.org_id, k.key_hash, k.display_prefix, k.revoked_at, o.status "
        "FROM api_keys k JOIN organizations o ON o.id = k.org_id WHERE k.id = $1",
        uuid.UUID(created["key_id"]),
    )
    assert str(stored["org_id"]) == created["org_id"]
    assert stored["status"] == "active" and stored["revoked_at"] is None
    assert verify_key(key, stored["key_hash"], lectr_env[PEPPER_VAR])
    assert not verify_key(key, stored["key_hash"], "another-pepper-of-length")
    assert key.startswith(stored["display_prefix"])

    dump = await _all_text_in_database(db)
    secret_part = key.removeprefix(KEY_PREFIX)
    assert key not in dump
    assert secret_part[-20:] not in dump and secret_part[:20] not in dump


async def test_the_text_output_shows_the_key_once(lectr_env: dict[str, str]) -> None:
    result = await asyncio.to_thread(run_lectr, "org", "create", _name(), env=lectr_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(KEY_PREFIX) == 1
    assert "cannot show it again" in result.stdout


async def test_org_list_shows_orgs_and_active_keys(lectr_env: dict[str, str]) -> None:
    name = _name()
    created = await asyncio.to_thread(run_lectr_json, "org", "create", name, env=lectr_env)
    listed = await asyncio.to_thread(run_lectr_json, "org", "list", env=lectr_env)
    mine = [o for o in listed if o["id"] == created["org_id"]]
    assert mine == [
        {
            "id": created["org_id"],
            "name": name,
            "status": "active",
            "active_keys": 1,
            "created_at": mine[0]["created_at"],
        }
    ]
    text = await asyncio.to_thread(run_lectr, "org", "list", env=lectr_env)
    assert name in text.stdout and KEY_PREFIX not in text.stdout


async def test_rotate_revokes_old_keys_and_issues_a_working_one(
    db: asyncpg.Connection, lectr_env: dict[str, str]
) -> None:
    name = _name()
    created = await asyncio.to_thread(run_lectr_json, "org", "create", name, env=lectr_env)
    rotated = await asyncio.to_thread(run_lectr_json, "key", "rotate", name, env=lectr_env)
    assert rotated["org_id"] == created["org_id"]
    assert rotated["revoked_keys"] == 1
    assert rotated["key"] != created["key"]
    again = await asyncio.to_thread(
        run_lectr_json, "key", "rotate", created["org_id"], env=lectr_env
    )
    assert again["revoked_keys"] == 1

    keys = await db.fetch(
        "SELECT id, key_hash, revoked_at FROM api_keys WHERE org_id = $1 ORDER BY created_at",
        uuid.UUID(created["org_id"]),
    )
    assert [k["revoked_at"] is None for k in keys] == [False, False, True]
    assert verify_key(again["key"], keys[-1]["key_hash"], lectr_env[PEPPER_VAR])


async def test_bad_org_requests_get_one_clear_line(lectr_env: dict[str, str]) -> None:
    name = _name()
    await asyncio.to_thread(run_lectr_json, "org", "create", name, env=lectr_env)
    duplicate = await asyncio.to_thread(run_lectr, "org", "create", name, env=lectr_env)
    assert duplicate.returncode == 2
    assert duplicate.stderr.strip() == f"lectr: an organisation named {name!r} already exists"

    missing = await asyncio.to_thread(run_lectr, "key", "rotate", "no-such-org", env=lectr_env)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "lectr: no organisation with id or name 'no-such-org'"


async def test_commands_on_an_unmigrated_database_say_to_migrate(
    scratch_database_url: str, lectr_env: dict[str, str]
) -> None:
    from lectr.db import ensure_database

    await ensure_database(scratch_database_url)
    env = {**lectr_env, "LECTR_DATABASE_URL": scratch_database_url}
    result = await asyncio.to_thread(run_lectr, "org", "list", env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "lectr: the database has no Lectr tables yet; run `lectr migrate` first"
    )


async def test_key_changes_tell_running_proxies_to_reload(
    amqp: aio_pika.abc.AbstractConnection,
    broker_names: BrokerNames,
    lectr_env: dict[str, str],
) -> None:
    channel = await amqp.channel()
    control = await channel.declare_exchange(
        broker_names.control, aio_pika.ExchangeType.FANOUT, durable=True
    )
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(control)

    rotated_org = await asyncio.to_thread(run_lectr_json, "org", "create", _name(), env=lectr_env)
    org_id = uuid.UUID(rotated_org["org_id"])
    received = []
    async with queue.iterator(timeout=5) as messages:
        async for message in messages:
            await message.ack()
            received.append(ControlMessage.decode(message.body))
            if len(received) == 2:
                break
    assert received == [ControlMessage("orgs", org_id), ControlMessage("keys", org_id)]
    await channel.close()


async def test_a_broker_outage_does_not_undo_the_change(lectr_env: dict[str, str]) -> None:
    env = {**lectr_env, "LECTR_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"}
    result = await asyncio.to_thread(run_lectr, "org", "create", _name(), "--json", env=env)
    assert result.returncode == 0
    assert KEY_PREFIX in result.stdout
    assert "could not notify running proxies" in result.stderr
    assert "LECTR_AMQP_URL" in result.stderr


async def test_keys_can_overlap_for_a_rotation_without_downtime(
    db: asyncpg.Connection, lectr_env: dict[str, str]
) -> None:
    name = _name()
    first = await asyncio.to_thread(run_lectr_json, "org", "create", name, env=lectr_env)
    second = await asyncio.to_thread(
        run_lectr_json, "key", "create", name, "--name", "deploy-2", env=lectr_env
    )
    listed = await asyncio.to_thread(run_lectr_json, "key", "list", name, env=lectr_env)
    assert [k["id"] for k in listed] == [second["key_id"], first["key_id"]]
    assert [k["name"] for k in listed] == ["deploy-2", None]
    assert all(k["revoked_at"] is None for k in listed)
    assert first["key"] not in str(listed) and second["key"] not in str(listed)

    revoked = await asyncio.to_thread(run_lectr, "key", "revoke", first["key_id"], env=lectr_env)
    assert revoked.returncode == 0, revoked.stderr
    rows = await db.fetch(
        "SELECT id::text, key_hash, revoked_at FROM api_keys WHERE org_id = $1",
        uuid.UUID(first["org_id"]),
    )
    state = {r["id"]: r for r in rows}
    assert state[first["key_id"]]["revoked_at"] is not None
    assert state[second["key_id"]]["revoked_at"] is None
    assert verify_key(second["key"], state[second["key_id"]]["key_hash"], lectr_env[PEPPER_VAR])

    text = await asyncio.to_thread(run_lectr, "key", "list", name, env=lectr_env)
    assert "revoked" in text.stdout and "active" in text.stdout
    assert KEY_PREFIX in text.stdout and first["key"] not in text.stdout


async def test_an_org_can_be_disabled_and_enabled(
    db: asyncpg.Connection, lectr_env: dict[str, str]
) -> None:
    name = _name()
    created = await asyncio.to_thread(run_lectr_json, "org", "create", name, env=lectr_env)
    org_id = uuid.UUID(created["org_id"])
    for action, status in (("disable", "disabled"), ("enable", "active")):
        result = await asyncio.to_thread(run_lectr, "org", action, name, env=lectr_env)
        assert result.returncode == 0, result.stderr
        assert await db.fetchval("SELECT status FROM organizations WHERE id = $1", org_id) == (
            status
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("org", "create", "   "), "an organisation name must be 1-200 characters"),
        (("key", "revoke", "not-a-uuid"), "'not-a-uuid' is not a key id"),
        (
            ("key", "revoke", "00000000-0000-0000-0000-000000000000"),
            "no key with id '00000000-0000-0000-0000-000000000000'",
        ),
        (("key", "list", "no-such-org"), "no organisation with id or name 'no-such-org'"),
        (("org", "disable", "no-such-org"), "no organisation with id or name 'no-such-org'"),
    ],
)
async def test_bad_arguments_get_one_clear_line(
    lectr_env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    result = await asyncio.to_thread(run_lectr, *args, env=lectr_env)
    assert result.returncode == 2
    assert result.stderr.strip() == f"lectr: {message}"
