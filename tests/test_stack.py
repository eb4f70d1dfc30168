"""`lectr up` runs the whole stack: a request through its proxy is stored by its consumer,
and the scheduler and the management API run beside them."""

from __future__ import annotations

import asyncio
import signal
import uuid

import aio_pika
import aiohttp
import asyncpg

from lectr import migrations
from lectr.broker import BrokerNames
from lectr.db import asyncpg_dsn
from tests.support.cli import run_lectr_json
from tests.support.processes import free_port, start_lectr, wait_for_health
from tests.support.providers import FakeProviders


async def test_lectr_up_serves_and_stores_a_request_end_to_end(
    scratch_database_url: str,
    lectr_env: dict[str, str],
    amqp: aio_pika.abc.AbstractConnection,
    fake: FakeProviders,
) -> None:
    names = BrokerNames(f"{lectr_env['LECTR_BROKER_PREFIX']}_{uuid.uuid4().hex[:8]}")
    port, scheduler_port, api_port = free_port(), free_port(), free_port()
    env = {
        **lectr_env,
        "LECTR_DATABASE_URL": scratch_database_url,
        "LECTR_BROKER_PREFIX": names.prefix,
        "LECTR_PROXY_PORT": str(port),
        "LECTR_SCHEDULER_PORT": str(scheduler_port),
        "LECTR_API_PORT": str(api_port),
        "LECTR_OPENAI_BASE_URL": fake.base_urls()["openai"],
        "LECTR_CONSUMER_FLUSH_INTERVAL_S": "0.2",
    }
    up = start_lectr(["up"], env)
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_for_health(url, up, timeout_s=40)
        await wait_for_health(f"http://127.0.0.1:{scheduler_port}", up, timeout_s=40)
        await wait_for_health(f"http://127.0.0.1:{api_port}/api", up, timeout_s=40)
        assert await migrations.current_revision(scratch_database_url) == (
            migrations.head_revision()
        )
        org = await asyncio.to_thread(run_lectr_json, "org", "create", "stack-test", env=env)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{url}/v1/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                headers={"X-Lectr-Key": org["key"], "Authorization": "Bearer sk-stack"},
            ) as response,
        ):
            assert response.status == 200
        conn = await asyncpg.connect(asyncpg_dsn(scratch_database_url))
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while not await conn.fetchval("SELECT count(*) FROM request_logs"):
                assert asyncio.get_running_loop().time() < deadline, "never stored"
                await asyncio.sleep(0.2)
            row = await conn.fetchrow("SELECT org_id, actual_model FROM request_logs")
        finally:
            await conn.close()
        assert (str(row["org_id"]), row["actual_model"]) == (org["org_id"], "gpt-4o")
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(up.communicate, timeout=60)
        channel = await amqp.channel()
        for queue in (names.ingest, names.dead, names.replay):
            await channel.queue_delete(queue)
        for exchange in (names.events, names.control):
            await channel.exchange_delete(exchange)
        await channel.close()
    assert up.returncode == 0, stderr
    assert "proxy stopped" in stderr and "consumer stopped" in stderr
    assert "scheduler stopped with code 0" in stderr
    assert "api stopped with code 0" in stderr
