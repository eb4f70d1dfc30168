"""The Lectr processes the demo runs: ``python -m lectr …`` subprocesses, never imports.

Each long-running child gets its own session (like ``lectr up``'s children), so a
terminal's Ctrl-C reaches only the demo, which then stops them in order: SIGTERM, the
time the child needs to finish, then SIGKILL to its whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from lectr.errors import CommandError

LECTR = (sys.executable, "-m", "lectr")
# A scheduler job, once started, has this long to print its line.
JOB_TIMEOUT_S = 300.0


def child_env(
    defaults: Mapping[str, str] | None = None, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """This process's environment, with ``defaults`` for variables that are unset or
    empty, and ``overrides`` whatever they are."""
    env = dict(os.environ)
    for name, value in (defaults or {}).items():
        if not env.get(name):
            env[name] = value
    env.update(overrides or {})
    return env


@dataclass
class Child:
    """A long-running ``lectr NAME`` subprocess."""

    name: str
    process: asyncio.subprocess.Process
    stop_timeout_s: float

    @classmethod
    async def start(
        cls, name: str, args: tuple[str, ...], env: Mapping[str, str], stop_timeout_s: float
    ) -> Child:
        process = await asyncio.create_subprocess_exec(
            *LECTR,
            *args,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        return cls(name, process, stop_timeout_s)

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def stop(self) -> int | None:
        """SIGTERM, wait up to ``stop_timeout_s``, then kill its process group."""
        process = self.process
        if process.returncode is not None:
            return process.returncode
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(process.wait(), self.stop_timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            return await process.wait()


@dataclass(frozen=True)
class JobResult:
    ok: bool
    line: str
    stderr: str


async def run_job(job: str, env: Mapping[str, str]) -> JobResult:
    """``lectr scheduler --run-once JOB``: its one line, and whether it succeeded."""
    process = await asyncio.create_subprocess_exec(
        *LECTR,
        "scheduler",
        "--run-once",
        job,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), JOB_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise CommandError(f"the {job} job did not finish within {JOB_TIMEOUT_S:.0f} s") from None
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        raise
    lines = out.decode(errors="replace").strip().splitlines()
    line = lines[-1] if lines else f"{job}: no result (exit code {process.returncode})"
    return JobResult(process.returncode == 0, line, err.decode(errors="replace").strip())


async def wait_for_health(url: str, child: Child, timeout_s: float) -> None:
    """Return once ``url/health`` answers 200; fail when ``child`` exits or time is up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as session:
        while True:
            if not child.running:
                raise CommandError(
                    f"the demo's {child.name} exited with code {child.process.returncode} "
                    "before it was ready (its messages are above)"
                )
            try:
                async with session.get(f"{url}/health") as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if loop.time() > deadline:
                raise CommandError(
                    f"the demo's {child.name} did not answer {url}/health within {timeout_s:.0f} s"
                )
            await asyncio.sleep(0.2)
