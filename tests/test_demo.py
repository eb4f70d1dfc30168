"""`lectr demo`: a demo org with 8 days of history, its jobs' results, live traffic
through its own proxy, and `--purge`.

The session's database and broker prefix are shared by these tests, so each one makes
what it needs itself (the demo is made to be re-run) rather than relying on order.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import anthropic
import asyncpg
import openai
import pytest

from lectr.demo.history import HISTORY_INSTANCE, Prices, build
from lectr.demo.provider import SimulatedProvider
from lectr.settings import DEV_ADMIN_SECRET
from schema.events import encode_events
from tests.support.cli import run_lectr
from tests.support.processes import free_port, start_lectr

DEMO_PROXY_INSTANCE = "lectr-demo-proxy"
RUN_TIMEOUT_S = 90.0


def _demo_env(lectr_env: dict[str, str]) -> dict[str, str]:
    return {**lectr_env, "LECTR_DEMO_PROXY_PORT": str(free_port())}


def _run_demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = run_lectr("demo", "--no-live", *args, env=env, timeout_s=RUN_TIMEOUT_S)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _printed(pattern: str, stdout: str) -> str:
    found = re.search(pattern, stdout, re.MULTILINE)
    assert found, stdout
    return found.group(1)


async def _demo_org(db: asyncpg.Connection) -> uuid.UUID | None:
    return await db.fetchval("SELECT id FROM organizations WHERE name = 'demo'")


@pytest.mark.timeout(150)
async def test_demo_loads_history_runs_the_jobs_and_finds_the_incidents(
    lectr_env: dict[str, str], db: asyncpg.Connection
) -> None:
    env = _demo_env(lectr_env)
    purged = await asyncio.to_thread(run_lectr, "demo", "--purge", env=env)
    assert purged.returncode == 0, purged.stderr

    result = await asyncio.to_thread(_run_demo, env)

    out = result.stdout
    key = _printed(r"^  key:\s+(lc_key_\S+)$", out)
    org_id = uuid.UUID(_printed(r"^  org id: (\S+)$", out))
    assert key.startswith("lc_key_")
    assert f"http://127.0.0.1:8081/orgs/{org_id}" in out
    assert "LECTR_ADMIN_SECRET" in out
    assert f"the development default {DEV_ADMIN_SECRET!r}" in out  # nothing set: say it
    assert "no consumer reads" in out  # the session's queue has no consumer: it ran its own
    for job in ("aggregate", "anomalies", "recommendations"):
        assert re.search(rf"^  {job}: ok in ", out, re.MULTILINE), out
    seconds = float(_printed(r"^demo data ready in ([0-9.]+) s", out))
    assert seconds < 60, out

    org = await db.fetchrow(
        "SELECT status, p95_latency_threshold_ms, alert_recipients FROM organizations "
        "WHERE id = $1",
        org_id,
    )
    assert org["status"] == "active" and org["p95_latency_threshold_ms"] > 0
    assert "demo@example.com" in org["alert_recipients"]

    logs = await db.fetchrow(
        """
        SELECT count(*) AS requests, max(created_at) - min(created_at) AS span,
               count(DISTINCT provider) AS providers, count(DISTINCT feature) AS features,
               count(*) FILTER (WHERE streaming) AS streams,
               count(*) FILTER (WHERE error_category IS NOT NULL) AS errors,
               count(DISTINCT error_category) AS error_kinds,
               count(*) FILTER (WHERE token_source = 'provider') AS reported,
               count(*) FILTER (WHERE cost_usd > 0) AS priced
        FROM request_logs WHERE org_id = $1
        """,
        org_id,
    )
    assert logs["span"].total_seconds() > 7.9 * 86400
    assert logs["providers"] >= 3 and logs["features"] >= 4
    assert logs["streams"] > 0 and logs["errors"] > 0 and logs["error_kinds"] >= 4
    assert logs["reported"] > 0.9 * logs["requests"]
    assert logs["priced"] > 0.9 * logs["requests"]
    assert 0.005 < logs["errors"] / logs["requests"] < 0.04

    summaries = await db.fetch(
        "SELECT period, computed_at FROM dashboard_summaries WHERE org_id = $1", org_id
    )
    assert summaries and all(s["computed_at"] is not None for s in summaries)

    kinds = {
        r["kind"]
        for r in await db.fetch(
            "SELECT kind FROM anomalies WHERE org_id = $1 AND status = 'open'", org_id
        )
    }
    assert {"cost", "error_rate"} <= kinds

    advice = await db.fetchrow(
        "SELECT current_model, recommended_model, projected_savings_usd FROM recommendations "
        "WHERE org_id = $1 AND feature = 'ticket-classifier' AND status = 'open'",
        org_id,
    )
    assert advice is not None
    assert advice["current_model"] == "gpt-4o"
    assert advice["recommended_model"] != "gpt-4o"
    assert advice["projected_savings_usd"] > 0


@pytest.mark.timeout(200)
async def test_a_second_run_reuses_the_org_revokes_the_old_key_and_keeps_the_history(
    lectr_env: dict[str, str], db: asyncpg.Connection
) -> None:
    env = _demo_env(lectr_env)
    first = await asyncio.to_thread(_run_demo, env)
    org_id = await _demo_org(db)
    first_key = uuid.UUID(_printed(r"^  key id: (\S+)$", first.stdout))
    count = "SELECT count(*) FROM request_logs WHERE org_id = $1 AND proxy_instance = $2"
    stored = await db.fetchval(count, org_id, HISTORY_INSTANCE)

    second = await asyncio.to_thread(_run_demo, env)

    assert "Reusing organisation 'demo'; revoked 1 earlier demo key" in second.stdout
    second_key = uuid.UUID(_printed(r"^  key id: (\S+)$", second.stdout))
    assert await db.fetchval("SELECT count(*) FROM organizations WHERE name = 'demo'") == 1
    keys = {
        r["id"]: r["revoked_at"]
        for r in await db.fetch("SELECT id, revoked_at FROM api_keys WHERE org_id = $1", org_id)
    }
    assert keys[first_key] is not None and keys[second_key] is None
    assert [k for k, revoked in keys.items() if revoked is None] == [second_key]
    assert await db.fetchval(count, org_id, HISTORY_INSTANCE) == stored


@pytest.mark.timeout(240)
async def test_live_traffic_goes_through_the_demo_proxy_until_ctrl_c(
    lectr_env: dict[str, str], db: asyncpg.Connection
) -> None:
    env = _demo_env(lectr_env)
    port = int(env["LECTR_DEMO_PROXY_PORT"])
    demo = start_lectr(["demo", "--live-rps", "5"], env)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 150
        while True:
            assert demo.poll() is None, demo.communicate()
            row = await db.fetchrow(
                "SELECT count(*) AS n, count(*) FILTER (WHERE streaming) AS streams, "
                "count(DISTINCT provider) AS providers FROM request_logs "
                "WHERE proxy_instance = $1 AND created_at > now() - interval '10 minutes'",
                DEMO_PROXY_INSTANCE,
            )
            if row["n"] >= 10 and row["streams"] >= 2 and row["providers"] >= 2:
                break
            assert loop.time() < deadline, "live traffic never reached request_logs"
            await asyncio.sleep(0.5)
        demo.send_signal(signal.SIGINT)
        stopped = loop.time()
        out, err = await asyncio.to_thread(demo.communicate, timeout=30)
        assert loop.time() - stopped < 20
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
    assert demo.returncode == 0, out + err
    assert "live: 5 requests a second through the demo proxy" in out
    assert "stopped live traffic:" in out and "stopped the demo's proxy" in out
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    features = await db.fetchval(
        "SELECT count(DISTINCT feature) FROM request_logs WHERE proxy_instance = $1",
        DEMO_PROXY_INSTANCE,
    )
    assert features >= 2


async def test_purge_removes_the_demo_org_and_its_rows(
    lectr_env: dict[str, str], db: asyncpg.Connection
) -> None:
    env = _demo_env(lectr_env)
    org_id = await _demo_org(db)
    if org_id is None:
        created = await asyncio.to_thread(run_lectr, "org", "create", "demo", env=env)
        assert created.returncode == 0, created.stderr
        org_id = await _demo_org(db)
    await db.execute(
        "INSERT INTO request_rollups (bucket_start, org_id, feature, provider, model, "
        "status_class, latency_histogram) VALUES (date_trunc('hour', now()), $1, 'f', "
        "'openai', 'gpt-4o', '2xx', '{}') ON CONFLICT DO NOTHING",
        org_id,
    )

    purged = await asyncio.to_thread(run_lectr, "demo", "--purge", env=env)

    assert purged.returncode == 0, purged.stderr
    assert f"removed the organisation 'demo' ({org_id})" in purged.stdout
    assert "hourly rollups" in purged.stdout
    assert await _demo_org(db) is None
    for table in ("request_logs", "request_rollups", "dashboard_summaries", "api_keys"):
        assert not await db.fetchval(f"SELECT count(*) FROM {table} WHERE org_id = $1", org_id)

    again = await asyncio.to_thread(run_lectr, "demo", "--purge", env=env)
    assert again.returncode == 0, again.stderr
    assert "nothing to purge" in again.stdout


async def test_bad_settings_and_unreachable_services_are_one_line_errors(
    lectr_env: dict[str, str],
) -> None:
    bad_port = {**lectr_env, "LECTR_DEMO_PROXY_PORT": "eighty"}
    result = await asyncio.to_thread(run_lectr, "demo", "--no-live", env=bad_port)
    assert result.returncode == 2
    assert result.stderr.startswith("lectr: LECTR_DEMO_PROXY_PORT: expected a port number")

    no_db = {**lectr_env, "LECTR_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/x"}
    result = await asyncio.to_thread(run_lectr, "demo", "--no-live", env=no_db)
    assert result.returncode == 1
    assert result.stderr.startswith("lectr: cannot reach the database"), result.stderr

    no_broker = {**lectr_env, "LECTR_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/"}
    result = await asyncio.to_thread(run_lectr, "demo", "--no-live", env=no_broker)
    assert result.returncode == 1
    assert result.stderr.startswith("lectr: cannot reach the broker"), result.stderr
    assert "key:" not in result.stdout  # nothing was changed

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = {**lectr_env, "LECTR_DEMO_PROXY_PORT": str(taken.getsockname()[1])}
        result = await asyncio.to_thread(run_lectr, "demo", env=busy)
    assert result.returncode == 1
    assert result.stderr.startswith("lectr: LECTR_DEMO_PROXY_PORT: cannot listen on"), result
    assert "key:" not in result.stdout


def test_the_history_is_deterministic_and_its_incidents_stand_out() -> None:
    org_id, key_id = uuid.uuid4(), uuid.uuid4()
    until = datetime(2026, 12, 2, 3, tzinfo=UTC)  # a quiet hour: the spikes must still show
    prices = Prices.load()
    first = build(seed=7, org_id=org_id, key_id=key_id, until=until, prices=prices)
    again = build(seed=7, org_id=org_id, key_id=key_id, until=until, prices=prices)
    other = build(seed=8, org_id=org_id, key_id=key_id, until=until, prices=prices)

    assert [e.id for e in first.events] == [e.id for e in again.events]
    assert encode_events(first.events) == encode_events(again.events)
    assert not {e.id for e in first.events} & {e.id for e in other.events}
    assert all(e.text is None and e.cost_usd is None for e in first.events)
    assert all(until - timedelta(days=8) <= e.created_at < until for e in first.events)
    assert first.spike_hour == until - timedelta(hours=1)
    assert first.spike_cost > 5 * first.baseline_cost_per_hour
    assert first.spike_error_rate >= 0.25 > 10 * first.baseline_error_rate
    tickets = [e for e in first.events if e.feature == "ticket-classifier"]
    assert len(tickets) >= 600
    assert {e.actual_model for e in tickets} == {"gpt-4o"}
    assert sum(e.error_category is not None for e in tickets) / len(tickets) < 0.02


async def test_the_simulated_provider_answers_the_official_sdks() -> None:
    provider = SimulatedProvider(pace_s=0.001, seed=1)
    await provider.start()
    try:
        urls = provider.base_urls()
        for base_url, model, snapshot in (
            (urls["openai"], "gpt-4o", "gpt-4o-2024-08-06"),
            (urls["gemini"], "gemini-2.5-flash", "gemini-2.5-flash"),
        ):
            async with openai.AsyncOpenAI(base_url=base_url, api_key="sk-test") as client:
                messages = [{"role": "user", "content": "Say hello in a few words."}]
                reply = await client.chat.completions.create(
                    model=model, messages=messages, max_tokens=20
                )
                assert reply.model == snapshot
                assert reply.choices[0].message.content
                assert reply.usage is not None and reply.usage.prompt_tokens > 0
                assert reply.usage.completion_tokens == len(
                    reply.choices[0].message.content.split()
                )
                stream = await client.chat.completions.create(
                    model=model,
                    messages=messages,
                    max_tokens=20,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                text, usage = "", None
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        text += chunk.choices[0].delta.content
                    usage = chunk.usage or usage
                assert text and usage is not None
                assert usage.completion_tokens == len(text.split())

        anthropic_base = urls["anthropic"].removesuffix("/v1")
        async with anthropic.AsyncAnthropic(base_url=anthropic_base, api_key="sk-ant") as claude:
            question = [{"role": "user", "content": "Say hello."}]
            message = await claude.messages.create(
                model="claude-haiku-4-5", max_tokens=20, messages=question
            )
            assert message.model == "claude-haiku-4-5-20251001"
            assert message.content[0].type == "text" and message.content[0].text
            assert message.usage.input_tokens > 0
            async with claude.messages.stream(
                model="claude-sonnet-4-6", max_tokens=20, messages=question
            ) as stream:
                text = "".join([part async for part in stream.text_stream])
                final = await stream.get_final_message()
            assert text and final.usage.output_tokens == len(text.split())
    finally:
        await provider.stop()
