"""``lectr proxy --workers N``: N proxy processes on one port.

The parent runs no proxy itself: it starts N children (``python -m lectr proxy``) with
``SO_REUSEPORT`` so the kernel spreads connections across them, restarts one that
crashes, and passes SIGINT/SIGTERM on so each drains its own buffer before exiting. It
gives them the deadline their settings imply (:func:`proxy.shutdown.process_deadline_s`)
and a margin before killing them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from lectr.supervisor import ProcessSpec, Supervisor

WORKER_ENV = "LECTR_PROXY_WORKER_INDEX"


def is_worker() -> bool:
    return os.environ.get(WORKER_ENV) is not None


def specs(count: int, instance: str) -> list[ProcessSpec]:
    return [
        ProcessSpec(
            f"proxy-{index}",
            (sys.executable, "-m", "lectr", "proxy", "--workers", "1"),
            env={
                **os.environ,
                WORKER_ENV: str(index),
                "LECTR_INSTANCE_NAME": f"{instance}-w{index}",
            },
        )
        for index in range(count)
    ]


def supervise(count: int, instance: str, stop_timeout_s: float) -> int:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, stop.set)
        await Supervisor(
            specs(count, instance), stop_timeout_s=stop_timeout_s, stop_together=True
        ).run(stop)

    asyncio.run(main())
    return 0
