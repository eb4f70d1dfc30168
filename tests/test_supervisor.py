"""`lectr up`'s supervisor, with real child processes."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
import time
from pathlib import Path

import pytest

from lectr.supervisor import ProcessSpec, Supervisor, restart_delay
from tests.conftest import REPLAY_MAX_AGE
from tests.support.cli import run_lectr

# A child that logs "start NAME", and "stop NAME" on SIGTERM (unless told to ignore it).
CHILD = """
import os, signal, sys, time
log, name, mode = sys.argv[1], sys.argv[2], sys.argv[3]
def write(line):
    with open(log, "a") as f:
        f.write(line + "\\n")
write("start " + name)
if mode == "crash-once" and not os.path.exists(log + "." + name):
    open(log + "." + name, "w").close()
    sys.exit(3)
def on_term(signum, frame):
    write("stop " + name)
    sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "ignore-term" else on_term)
if mode == "ignore-term":  # and leave a worker of its own behind
    import subprocess
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    write("worker " + str(worker.pid))
while True:
    time.sleep(0.05)
"""


def _spec(log: Path, name: str, mode: str = "normal") -> ProcessSpec:
    return ProcessSpec(name, (sys.executable, "-c", CHILD, str(log), name, mode))


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


async def _wait_for_lines(log: Path, count: int, timeout_s: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        lines = _lines(log)
        if len(lines) >= count:
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {count} lines, got {lines}")
        await asyncio.sleep(0.02)


async def test_starts_in_order_and_stops_in_reverse(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lectr.supervisor")
    log = tmp_path / "events.log"
    names = ["consumer", "scheduler", "api", "proxy"]
    supervisor = Supervisor([_spec(log, n) for n in names], stop_timeout_s=5)
    stop = asyncio.Event()
    running = asyncio.create_task(supervisor.run(stop))
    assert sorted(await _wait_for_lines(log, 4)) == sorted(f"start {n}" for n in names)
    started = [r.args[0] for r in caplog.records if r.msg.startswith("started")]
    assert started == names

    stop.set()
    await asyncio.wait_for(running, 10)
    assert _lines(log)[4:] == [f"stop {n}" for n in reversed(names)]


async def test_a_crashed_child_is_restarted(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    supervisor = Supervisor(
        [_spec(log, "steady"), _spec(log, "flaky", "crash-once")], restart_delay_s=0.01
    )
    stop = asyncio.Event()
    running = asyncio.create_task(supervisor.run(stop))
    lines = await _wait_for_lines(log, 3)
    assert sorted(lines) == ["start flaky", "start flaky", "start steady"]
    assert supervisor.restarts("flaky") == 1
    assert supervisor.restarts("steady") == 0

    stop.set()
    await asyncio.wait_for(running, 10)
    assert _lines(log)[3:] == ["stop flaky", "stop steady"]


async def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(
    tmp_path: Path,
) -> None:
    log = tmp_path / "events.log"
    supervisor = Supervisor([_spec(log, "stubborn", "ignore-term")], stop_timeout_s=0.3)
    stop = asyncio.Event()
    running = asyncio.create_task(supervisor.run(stop))
    lines = await _wait_for_lines(log, 2)
    worker_pid = int(lines[1].split()[1])
    stop.set()
    await asyncio.wait_for(running, 5)  # returns: the child was killed
    assert _lines(log) == lines  # it never got to log a clean stop
    await _wait_until_gone(worker_pid)  # its own worker went with it


async def test_a_child_gets_the_stop_timeout_its_spec_sets(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    stubborn = dataclasses.replace(_spec(log, "stubborn", "ignore-term"), stop_timeout_s=0.3)
    supervisor = Supervisor([stubborn], stop_timeout_s=60)  # the default, not used
    stop = asyncio.Event()
    running = asyncio.create_task(supervisor.run(stop))
    lines = await _wait_for_lines(log, 2)
    stop.set()
    started = time.monotonic()
    await asyncio.wait_for(running, 5)
    assert time.monotonic() - started < 3
    await _wait_until_gone(int(lines[1].split()[1]))


async def _wait_until_gone(pid: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # A killed process lingers as a zombie until reaped: that counts as gone.
        if _is_zombie(pid):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} is still running")
        await asyncio.sleep(0.02)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1].startswith("Z")
    except FileNotFoundError:
        return True


async def test_a_child_that_cannot_start_stops_those_already_started(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lectr.supervisor")
    broken = ProcessSpec("broken", (str(tmp_path / "no-such-program"),))
    supervisor = Supervisor([_spec(tmp_path / "events.log", "first"), broken], stop_timeout_s=5)
    with pytest.raises(FileNotFoundError):
        await asyncio.wait_for(supervisor.run(asyncio.Event()), 10)
    messages = [r.getMessage().split(" (pid")[0] for r in caplog.records]
    assert messages[0] == "started first"
    assert messages[-1].startswith("first stopped with code")


@pytest.mark.parametrize(
    ("previous_s", "uptime_s", "expected_s"),
    [
        (0, 0.1, 1),  # first crash
        (1, 0.1, 2),  # crashed again quickly: double
        (16, 0.1, 30),  # capped
        (30, 0.1, 30),
        (8, 61, 1),  # ran long enough: back to the first delay
    ],
)
def test_restart_delay_doubles_on_quick_crashes(
    previous_s: float, uptime_s: float, expected_s: float
) -> None:
    assert restart_delay(previous_s, uptime_s, first_s=1, max_s=30, stable_after_s=60) == expected_s


async def test_lectr_up_reports_an_unreachable_broker(lectr_env: dict[str, str]) -> None:
    env = {**lectr_env, "LECTR_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"}
    result = await asyncio.to_thread(run_lectr, "up", env=env)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("lectr: cannot reach the broker at LECTR_AMQP_URL")


async def test_lectr_up_refuses_settings_that_clash_with_the_broker(
    lectr_env: dict[str, str], topology: object
) -> None:
    # The replay stream's max age is a queue argument, which cannot change.
    env = {**lectr_env, "LECTR_REPLAY_MAX_AGE": "2" + REPLAY_MAX_AGE[1:]}
    result = await asyncio.to_thread(run_lectr, "up", env=env, timeout_s=30)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("lectr: the broker already has")
    assert "LECTR_REPLAY_MAX_AGE" in last
