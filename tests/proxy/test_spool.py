"""The shutdown spool: events that cannot reach the broker at shutdown survive a restart
(written sanitised, fsync'd, claimed once by the next proxy, published before new
events), bounded in bytes, and logged with their count when they are lost."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import aio_pika
import pytest

from lectr.orgs import IssuedKey
from proxy.spool import Spool
from schema.events import EVENTS_TYPE, UNCOUNTED, decode_events, encode_event
from tests.proxy.conftest import CHAT, RunningProxy, StartProxy
from tests.proxy.test_event_pipeline import send, wait_for
from tests.support.events import sample_event
from tests.support.forwarder import TcpForwarder


def lines(count: int) -> list[bytes]:
    return [encode_event(sample_event(text=None)) for _ in range(count)]


def test_written_events_are_claimed_once_then_released(tmp_path: Path) -> None:
    first, second = Spool(tmp_path, 10**6, "a"), Spool(tmp_path, 10**6, "b")
    events = lines(5)
    assert first.write(events) == 5
    [name] = os.listdir(tmp_path)
    assert name.startswith("events-") and name.endswith(f"-a-{os.getpid()}.jsonl")
    assert second.claim() == events
    assert first.claim() == []  # taken: the same file is never sent by two proxies
    second.release()
    assert os.listdir(tmp_path) == []


def test_the_spool_is_bounded_in_bytes(tmp_path: Path) -> None:
    events = lines(10)
    room = sum(len(e) + 1 for e in events[:4])
    spool = Spool(tmp_path, room + 5, "a")
    assert spool.write(events) == 4
    assert spool.write(events) == 0  # the directory is full
    assert Spool(tmp_path, 10**6, "b").claim() == events[:4]


def test_claims_of_dead_processes_are_taken_over(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    pid = int(dead.stdout)
    host = socket.gethostname()
    events = lines(2)
    (tmp_path / f"events-1-x-1.jsonl.claimed-{host}-{pid}-ab12").write_bytes(events[0])
    (tmp_path / f"events-2-x-1.jsonl.claimed-{host}-{os.getpid()}-cd34").write_bytes(events[1])
    (tmp_path / f"events-3-x-1.jsonl.claimed-{host}-1-ab12").write_bytes(b"{}\n")  # pid 1 lives
    (tmp_path / "events-4-x-1.jsonl.claimed-another-host-5-ab12").write_bytes(b"{}\n")
    (tmp_path / ".events-5-x-1.jsonl.tmp").write_bytes(b"{}\n")  # never completed
    spool = Spool(tmp_path, 10**6, "a")
    assert spool.claim() == events
    spool.release()
    assert len(os.listdir(tmp_path)) == 3


def test_unreadable_lines_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    events = lines(2)
    (tmp_path / "events-1-x-1.jsonl").write_bytes(events[0] + b"\nnot json\n" + events[1])
    assert Spool(tmp_path, 10**6, "a").claim() == events
    assert "skipped 1 unreadable lines" in caplog.text


async def ingest_bodies(proxy: RunningProxy, amqp_url: str) -> list[bytes]:
    connection = await aio_pika.connect(amqp_url)
    async with connection, connection.channel() as channel:
        queue = await channel.get_queue(proxy.names.ingest)
        bodies = []
        while message := await queue.get(no_ack=True, fail=False):
            if message.type == EVENTS_TYPE:
                bodies.append(message.body)
    return bodies


async def test_events_buffered_in_an_outage_survive_a_restart_and_are_stored_once(
    start_proxy: StartProxy,
    org: IssuedKey,
    amqp_url: str,
    amqp_forwarder: TcpForwarder,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="proxy")
    settings = {"spool_dir": str(tmp_path), "broker_wait_s": 0.5}
    first = await start_proxy(amqp=amqp_forwarder.url_for(amqp_url), **settings)
    amqp_forwarder.cut()
    await wait_for(lambda: not first.state.publisher.connected.is_set())
    stream = {**CHAT, "stream": True}  # no usage reported: its text rides along
    assert await send(first, org, 20) + await send(first, org, 5, stream) == [200] * 25
    await first.runner.cleanup()  # shutdown: nothing reaches the broker
    assert "shutting down with 25 events not published" in caplog.text
    assert f"spooled 25 events to {tmp_path}" in caplog.text

    amqp_forwarder.restore()
    second = await start_proxy(**settings)
    assert await send(second, org, 3) == [200] * 3
    await wait_for(lambda: second.state.publisher.published == 28)
    events = [
        e for body in await ingest_bodies(second, amqp_url) for e in decode_events(body).events
    ]
    assert len(events) == len({e.id for e in events}) == 28
    spooled, new = events[:25], events[25:]  # spooled events went out first
    assert {e.proxy_instance for e in spooled} == {"test-proxy"}
    assert all(e.org_id == org.org_id and e.text is None for e in events)
    assert sorted(e.token_source or "" for e in spooled).count(UNCOUNTED) == 5
    assert all(e.token_source == "provider" for e in new)
    assert os.listdir(tmp_path) == []  # published: the claimed file is gone


async def test_an_unwritable_spool_is_logged_with_the_count(
    start_proxy: StartProxy,
    org: IssuedKey,
    amqp_url: str,
    amqp_forwarder: TcpForwarder,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the spool directory should be")
    proxy = await start_proxy(
        amqp=amqp_forwarder.url_for(amqp_url), spool_dir=str(blocked / "spool"), broker_wait_s=0.5
    )
    amqp_forwarder.cut()
    await wait_for(lambda: not proxy.state.publisher.connected.is_set())
    assert await send(proxy, org, 4) == [200] * 4
    await proxy.runner.cleanup()
    assert "could not write the spool" in caplog.text and "4 events lost" in caplog.text
