"""Caches change without a restart: control messages, periodic reloads, failed reloads."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from lectr.orgs import IssuedKey, create_key
from tests.proxy.conftest import PEPPER, RunningProxy, add_rule, chat
from tests.support.forwarder import TcpForwarder
from tests.support.providers import FakeProviders


async def routed_model(proxy: RunningProxy, org: IssuedKey, fake: FakeProviders) -> str:
    assert (await chat(proxy, org, "gpt-4o")).status == 200
    return fake.last.json()["model"]


async def test_rule_and_control_message_change_routing_within_a_second(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders, db: asyncpg.Connection
) -> None:
    assert await routed_model(proxy, org, fake) == "gpt-4o"
    await add_rule(db, org, name="mini", priority=1, target_model="gpt-4o-mini")
    started = time.monotonic()
    await proxy.notify("rules", org.org_id)
    while await routed_model(proxy, org, fake) != "gpt-4o-mini":
        assert time.monotonic() - started < 1.0, "routing did not change within 1 s"
        await asyncio.sleep(0.02)


async def test_new_key_and_disabled_org_take_effect_live(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders, db: asyncpg.Connection
) -> None:
    issued = await create_key(db, str(org.org_id), pepper=PEPPER)
    await proxy.notify("keys", org.org_id)
    await _until(lambda: chat(proxy, issued, "gpt-4o"), 200)

    await db.execute("UPDATE organizations SET status = 'disabled' WHERE id = $1", org.org_id)
    await proxy.notify("orgs", org.org_id)
    await _until(lambda: chat(proxy, org, "gpt-4o"), 401)


async def _until(request, status: int, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (await request()).status != status:
        assert time.monotonic() < deadline, f"never got {status}"
        await asyncio.sleep(0.02)


async def test_periodic_reload_catches_missed_messages(
    start_proxy, org: IssuedKey, fake: FakeProviders, db: asyncpg.Connection
) -> None:
    proxy = await start_proxy(cache_reload_s=0.1)
    await add_rule(db, org, name="mini", priority=1, target_model="gpt-4o-mini")
    deadline = time.monotonic() + 3
    while await routed_model(proxy, org, fake) != "gpt-4o-mini":  # no control message sent
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def test_failed_reload_keeps_the_last_snapshot(
    start_proxy,
    org: IssuedKey,
    fake: FakeProviders,
    db: asyncpg.Connection,
    database_url: str,
    postgres_forwarder: TcpForwarder,
) -> None:
    await add_rule(db, org, name="mini", priority=1, target_model="gpt-4o-mini")
    proxy = await start_proxy(database=postgres_forwarder.url_for(database_url))
    assert await routed_model(proxy, org, fake) == "gpt-4o-mini"

    postgres_forwarder.cut()
    assert await proxy.state.caches.reload("rules") is False
    assert await routed_model(proxy, org, fake) == "gpt-4o-mini"  # still served from memory
    _, metrics = await proxy.get("/metrics")
    assert 'lectr_proxy_cache_reloads_total{cache="rules",outcome="failed"} 1.0' in metrics

    postgres_forwarder.restore()
    await db.execute("DELETE FROM routing_rules WHERE org_id = $1", org.org_id)
    assert await proxy.state.caches.reload("rules") is True
    assert await routed_model(proxy, org, fake) == "gpt-4o"


async def test_health_and_metrics(proxy: RunningProxy, org: IssuedKey) -> None:
    await chat(proxy, org, "gpt-4o")
    status, health = await proxy.get("/health")
    assert status == 200
    assert health["status"] == "ok" and health["broker_connected"] is True
    assert health["caches"]["keys"]["size"] >= 1
    assert health["caches"]["rules"]["age_s"] >= 0
    assert {"buffer_depth", "events_published", "events_dropped"} <= set(health)

    status, metrics = await proxy.get("/metrics")
    assert status == 200
    assert 'lectr_proxy_requests_total{provider="openai",status="200"} 1.0' in metrics
    for name in (
        "lectr_proxy_added_latency_seconds_bucket",
        "lectr_proxy_event_buffer_depth",
        "lectr_proxy_events_dropped_total",
        "lectr_proxy_publish_failures_total",
        'lectr_proxy_cache_reloads_total{cache="keys",outcome="ok"}',
    ):
        assert name in metrics

    proxy.state.draining = True
    status, health = await proxy.get("/health")
    assert status == 503 and health["status"] == "draining"


async def test_health_is_503_until_caches_are_loaded(proxy: RunningProxy) -> None:
    proxy.state.caches.loaded_at.pop("rules")
    status, health = await proxy.get("/health")
    assert (status, health["status"]) == (503, "starting")
