"""``lectr dead list | retry | purge`` against the real broker, with dead letters made by a
real consumer and a raw message the broker dead-lettered before consumers did it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import aio_pika
import orjson
import pytest

from consumers.consumer import Consumer
from lectr.broker import BrokerNames, Topology
from schema.events import encode_events
from tests.consumers.conftest import FAST, drain, make_event, org_events, publish, stored_rows
from tests.support.cli import run_lectr, run_lectr_json
from tests.support.events import take_all

DEAD = ("dead",)


@pytest.fixture
def dead_env(lectr_env: dict[str, str], private_names: BrokerNames) -> dict[str, str]:
    return {**lectr_env, "LECTR_BROKER_PREFIX": private_names.prefix}


async def lectr(env: dict[str, str], *args: str):
    return await asyncio.to_thread(run_lectr, *DEAD, *args, env=env)


async def make_dead_letters(topology: Topology, consumer_channel, pool) -> dict[str, object]:
    """A NUL model (org A), an event that does not decode, an undecodable message, and a
    raw batch with text the broker dead-lettered in the old days (org C)."""
    org_a, org_b, org_c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    nul = make_event(org_id=org_a, requested_model="gpt-4o\x00")
    broken = make_event(org_id=org_a, status_code=-1)
    await publish(topology, encode_events([*org_events(org_b, 3), nul, broken]))
    await publish(topology, b"PLANTED-PROMPT garbage that is not JSON")
    await drain(Consumer(FAST, pool, await consumer_channel()))
    legacy = org_events(org_c, 2)  # with prompt and completion text
    legacy_bad = make_event(org_id=org_c, status_code=-1)
    death = {"reason": "delivery_limit", "queue": "lectr.ingest", "count": 1,
             "time": datetime.now(UTC)}  # fmt: skip
    await topology.dead.channel.default_exchange.publish(
        aio_pika.Message(
            encode_events([*legacy, legacy_bad]),
            type="lectr.events.v1",
            headers={"x-death": [death]},
        ),
        routing_key=topology.dead.name,
    )
    return {"nul": nul, "broken": broken, "legacy": legacy, "legacy_bad": legacy_bad,
            "org_c": org_c}  # fmt: skip


async def test_list_shows_what_is_there_and_why_without_text_and_keeps_it_in_order(
    private_topology: Topology, consumer_channel, pool, dead_env: dict[str, str]
) -> None:
    made = await make_dead_letters(private_topology, consumer_channel, pool)
    first = await lectr(dead_env, "list")
    second = await lectr(dead_env, "list")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout  # nothing lost, nothing reordered
    out = first.stdout
    assert "PLANTED" not in out + first.stderr
    lines = out.splitlines()
    nul_line = next(line for line in lines if str(made["nul"].id) in line)  # type: ignore[attr-defined]
    assert f"org {made['nul'].org_id}" in nul_line  # type: ignore[attr-defined]
    assert "requested_model: holds NUL" in nul_line and "dead 20" in nul_line
    assert any(str(made["broken"].id) in line and "status_code" in line for line in lines)  # type: ignore[attr-defined]
    assert any("no events kept" in line and "not JSON" in line for line in lines)
    legacy_lines = [line for line in lines if "raw message from before" in line]
    assert len(legacy_lines) == 3 and all("holds text, not shown" in x for x in legacy_lines)
    assert "lectr dead retry --all" in lines[-1] and "4 messages" in lines[-1]

    rows = await asyncio.to_thread(run_lectr_json, *DEAD, "list", env=dead_env)
    assert isinstance(rows, list) and len(rows) == 6
    assert {r["kind"] for r in rows} == {"event", "undecodable", "legacy"}  # type: ignore[index]
    limited = await lectr(dead_env, "list", "--limit", "2")
    assert len(limited.stdout.splitlines()) == 3 and "first 2 shown" in limited.stdout

    # Listed three times, the queue still holds every message once, in order, and no
    # redelivery was counted (RabbitMQ 4.x would drop a message redelivered 20 times).
    remaining = await take_all(private_topology.dead)
    assert len(remaining) == 4
    assert all((m.headers or {}).get("x-delivery-count", 0) == 0 for m in remaining)
    listed_keys = list(dict.fromkeys(r["key"] for r in rows))  # type: ignore[index]
    assert [m.message_id for m in remaining] == listed_keys


async def test_retry_stores_chosen_events_and_sanitises_old_raw_messages(
    private_topology: Topology, consumer_channel, pool, db, dead_env: dict[str, str]
) -> None:
    made = await make_dead_letters(private_topology, consumer_channel, pool)
    nul = made["nul"]

    chosen = await lectr(dead_env, "retry", str(nul.id))  # type: ignore[attr-defined]
    assert chosen.returncode == 0, chosen.stderr
    assert "1 events re-published to ingest.events" in chosen.stdout
    await drain(Consumer(FAST, pool, await consumer_channel()))
    (row,) = await stored_rows(db, nul.org_id)  # type: ignore[attr-defined]
    assert row["id"] == nul.id and row["requested_model"] == "gpt-4o\ufffd"  # type: ignore[attr-defined]
    assert row["token_source"] == "uncounted" and row["cost_usd"] is None

    everything = await lectr(dead_env, "retry", "--all")
    assert everything.returncode == 0, everything.stderr
    assert "2 events re-published" in everything.stdout  # the legacy message's good events
    assert "no events (undecodable): purge it" in everything.stdout
    assert "still not storable" in everything.stdout  # the events that do not decode
    await drain(Consumer(FAST, pool, await consumer_channel()))
    stored_c = await stored_rows(db, made["org_c"])  # type: ignore[arg-type]
    assert {r["id"] for r in stored_c} == {e.id for e in made["legacy"]}  # type: ignore[attr-defined]

    left = await asyncio.to_thread(run_lectr_json, *DEAD, "list", env=dead_env)
    assert {r["kind"] for r in left} == {"event", "undecodable"}  # type: ignore[union-attr,index]
    ids = {r["id"] for r in left}  # type: ignore[union-attr,index]
    assert str(made["broken"].id) in ids and str(made["legacy_bad"].id) in ids  # type: ignore[attr-defined]
    remaining = await take_all(private_topology.dead)
    assert len(remaining) == 3
    assert all(b"PLANTED" not in m.body for m in remaining)
    for message in remaining:
        # Every dead letter is a batch in the wire format, without text.
        assert all(e.get("text") is None for e in orjson.loads(message.body)["events"])


async def test_purge_drops_chosen_or_all_and_an_unknown_id_is_exit_1(
    private_topology: Topology, consumer_channel, pool, dead_env: dict[str, str]
) -> None:
    made = await make_dead_letters(private_topology, consumer_channel, pool)
    one = await lectr(dead_env, "purge", str(made["broken"].id))  # type: ignore[attr-defined]
    assert one.returncode == 0 and "purged 1 dead-letter messages" in one.stdout
    unknown = await lectr(dead_env, "purge", str(uuid.uuid4()))
    assert unknown.returncode == 1 and "not found" in unknown.stdout
    everything = await lectr(dead_env, "purge", "--all")
    assert everything.returncode == 0 and "purged 3 dead-letter messages" in everything.stdout
    assert await take_all(private_topology.dead) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [(("retry",), "--all ID is required"), (("list", "--limit", "-1"), "--limit")],
)
def test_bad_input_is_one_line_and_exit_2(
    args: tuple[str, ...], message: str, lectr_env: dict[str, str]
) -> None:
    result = run_lectr(*DEAD, *args, env=lectr_env)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
