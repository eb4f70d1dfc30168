"""``lectr proxy --workers N``: N proxy processes on one port.

The parent runs no proxy itself: it starts N children (``python -m lectr proxy``) with
``SO_REUSEPORT`` so the kernel spreads connections across them, restarts one that
crashes, and passes SIGINT/SIGTERM on so each drains its own buffer before exiting. It
gives them the deadline their settings imply (:func:`proxy.shutdown.process_deadline_s`)
and a margin before killing them.

It also serves nothing on the port, but answers ``/metrics`` for the workers on a unix
socket in a private directory: the sum over all of them (:mod:`proxy.worker_metrics`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from lectr.supervisor import ProcessSpec, Supervisor
from proxy import worker_metrics

WORKER_ENV = "LECTR_PROXY_WORKER_INDEX"


def is_worker() -> bool:
    return os.environ.get(WORKER_ENV) is not None


def worker_index() -> int | None:
    """This process's index among the workers; None when it is not one."""
    value = os.environ.get(WORKER_ENV)
    return int(value) if value is not None else None


def specs(count: int, instance: str, metrics_dir: Path) -> list[ProcessSpec]:
    return [
        ProcessSpec(
            f"proxy-{index}",
            (sys.executable, "-m", "lectr", "proxy", "--workers", "1"),
            env={
                **os.environ,
                WORKER_ENV: str(index),
                "LECTR_INSTANCE_NAME": f"{instance}-w{index}",
                worker_metrics.SOCKET_DIR_ENV: str(metrics_dir),
                worker_metrics.WORKER_COUNT_ENV: str(count),
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
        with worker_metrics.private_directory() as metrics_dir:
            metrics_server = await worker_metrics.serve_parent(metrics_dir, count)
            try:
                await Supervisor(
                    specs(count, instance, metrics_dir),
                    stop_timeout_s=stop_timeout_s,
                    stop_together=True,
                ).run(stop)
            finally:
                await metrics_server.cleanup()

    asyncio.run(main())
    return 0
