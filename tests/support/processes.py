"""Helpers for tests that run Lectr processes: free ports, waiting for /health."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Mapping, Sequence

import aiohttp

from tests.support.cli import LECTR


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_lectr(args: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[str]:
    """``lectr ARGS`` in the background, stderr captured (read it with ``communicate``)."""
    return subprocess.Popen(
        [*LECTR, *args], env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


async def wait_for_health(url: str, process: subprocess.Popen[str], timeout_s: float) -> None:
    """Return once ``url/health`` answers 200; fail if ``process`` exits first."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with aiohttp.ClientSession() as session:
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                async with session.get(f"{url}/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            assert asyncio.get_running_loop().time() < deadline, f"{url} never became ready"
            await asyncio.sleep(0.1)
