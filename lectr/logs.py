"""Logging for every Lectr process: one line per record, UTC timestamps, to stderr.

Nothing logged may contain a prompt, completion, request body, provider key or raw
Lectr key; log ids and counts instead.
"""

from __future__ import annotations

import logging
import sys
import time


class _UTCFormatter(logging.Formatter):
    converter = time.gmtime


def configure(level: str = "INFO") -> None:
    """Send log records at ``level`` and above to stderr (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _UTCFormatter(
            "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s %(message)s",
            datefmt="%Y-%m-%dT%H:%M:%S",
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Chatty at INFO: aio-pika and aiormq log every reconnect attempt, Alembic each of
    # its plugins as it loads them.
    for name in ("aiormq", "aio_pika", "alembic.runtime.plugins"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
