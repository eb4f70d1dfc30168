"""``lectr consumer`` as a process: SIGTERM finishes the batch, SIGKILL loses nothing."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from aio_pika.abc import AbstractConnection

from lectr.broker import BrokerNames, Topology
from tests.consumers.conftest import org_events, publish_events, rollup_rows, stored_rows, wait_for
from tests.support.cli import LECTR, run_lectr

# Batches of 50 that wait 60 s to fill: after 120 events, 100 are stored and 20 held.
SLOW_FLUSH = {"LECTR_CONSUMER_BATCH_SIZE": "50", "LECTR_CONSUMER_FLUSH_INTERVAL_S": "60"}


@pytest.fixture
def consumer_env(lectr_env: dict[str, str], private_names: BrokerNames) -> dict[str, str]:
    return {**lectr_env, "LECTR_BROKER_PREFIX": private_names.prefix, **SLOW_FLUSH}


@pytest.fixture
def start_consumer(consumer_env: dict[str, str]) -> Iterator:
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [*LECTR, "consumer", *args],
            env=consumer_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


async def _ready_messages(amqp: AbstractConnection, name: str) -> int:
    channel = await amqp.channel()
    queue = await channel.declare_queue(name, passive=True)
    await channel.close()
    return queue.declaration_result.message_count


async def _stored(db: asyncpg.Connection, org: uuid.UUID, count: int) -> bool:
    return len(await stored_rows(db, org)) >= count


async def test_sigterm_finishes_the_current_batch_acks_it_and_exits_0(
    private_topology: Topology, start_consumer, db, amqp, private_names: BrokerNames
) -> None:
    org = uuid.uuid4()
    await publish_events(private_topology, org_events(org, 120), per_message=10)
    process = start_consumer()
    await wait_for(lambda: _stored(db, org, 100), timeout_s=30)
    await asyncio.sleep(0.3)  # the last 20 events reach the (partial) batch
    assert len(await stored_rows(db, org)) == 100
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.to_thread(process.communicate, timeout=30)
    assert process.returncode == 0, stderr
    assert len(await stored_rows(db, org)) == 120
    assert await _ready_messages(amqp, private_names.ingest) == 0  # all acked


async def test_sigkill_mid_batch_then_restart_loses_and_doubles_nothing(
    private_topology: Topology, start_consumer, db, amqp, private_names: BrokerNames,
    consumer_env: dict[str, str],
) -> None:  # fmt: skip
    org = uuid.uuid4()
    await publish_events(private_topology, org_events(org, 120), per_message=10)
    process = start_consumer()
    await wait_for(lambda: _stored(db, org, 100), timeout_s=30)
    await asyncio.sleep(0.3)
    process.kill()
    await asyncio.to_thread(process.wait, 10)
    assert len(await stored_rows(db, org)) == 100

    drained = await asyncio.to_thread(run_lectr, "consumer", "--drain", env=consumer_env)
    assert drained.returncode == 0, drained.stderr
    assert len(await stored_rows(db, org)) == 120
    (rollup,) = await rollup_rows(db, org)
    assert rollup["request_count"] == 120
    assert await _ready_messages(amqp, private_names.ingest) == 0


async def test_the_consumer_waits_for_a_database_that_is_down_at_start(
    private_topology: Topology, start_consumer, consumer_env: dict[str, str], db
) -> None:
    # Nothing listens on port 1: every connection attempt is refused.
    consumer_env["LECTR_DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/lectr"
    consumer_env["LECTR_CONSUMER_SHUTDOWN_TIMEOUT_S"] = "1"
    org = uuid.uuid4()
    await publish_events(private_topology, org_events(org, 5))
    process = start_consumer()
    await asyncio.sleep(2.5)
    assert process.poll() is None  # still up, retrying
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.to_thread(process.communicate, timeout=30)
    assert process.returncode == 0, stderr
    assert "retry" in stderr and "will be redelivered" in stderr
    assert await stored_rows(db, org) == []


async def test_bad_consumer_settings_are_one_line(consumer_env: dict[str, str]) -> None:
    env = {**consumer_env, "LECTR_CONSUMER_BATCH_SIZE": "none"}
    result = await asyncio.to_thread(run_lectr, "consumer", env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("lectr: LECTR_CONSUMER_BATCH_SIZE")
    assert len(result.stderr.strip().splitlines()) == 1
