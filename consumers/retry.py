"""Retrying database work that failed because Postgres could not be reached.

A transient failure (no connection, the server starting or shutting down, a deadlock,
too many connections) is retried after a wait that starts at :data:`FIRST_WAIT_S` and
doubles up to a cap, for as long as it takes: the broker keeps the backlog meanwhile.
Any other database error is permanent and raised at once.

Among permanent errors, a data error (:func:`is_data_error`: a value or row the
database refuses) is about the rows written; any other (a missing table or column
before ``lectr migrate``, a missing privilege) is about the database, and writers keep
retrying it rather than blame, and dead-letter, every event they hold.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from consumers.clock import Clock

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_WAIT_S = 0.1
# SQLSTATE classes that pass: connection (08), resources (53), operator intervention
# (57: shutdown, cannot connect now), transaction rollback (40: deadlock, serialisation).
TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "40")


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` says Postgres was unreachable or busy, not that the work is wrong."""
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return str(getattr(exc, "sqlstate", "") or "")[:2] in TRANSIENT_SQLSTATE_CLASSES
    return False


# SQLSTATE classes about the data itself: data exception (22: NUL in text, a value out
# of range), integrity constraint violation (23: a check, no partition for the row).
DATA_SQLSTATE_CLASSES = ("22", "23")


def is_data_error(exc: BaseException) -> bool:
    """True when Postgres refused what was written, not how or where it was written."""
    if not isinstance(exc, asyncpg.PostgresError):
        return False
    return str(getattr(exc, "sqlstate", "") or "")[:2] in DATA_SQLSTATE_CLASSES


def is_not_data_error(exc: BaseException) -> bool:
    """Worth retrying for a writer: anything but a data error (see the module docstring)."""
    return isinstance(exc, Exception) and not is_data_error(exc)


def backoff_s(attempt: int, max_s: float) -> float:
    """The wait before retry number ``attempt`` (1, 2, …): doubling, capped at ``max_s``."""
    return min(max_s, FIRST_WAIT_S * 2 ** min(attempt - 1, 32))


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    *,
    clock: Clock,
    max_wait_s: float,
    what: str,
    on_retry: Callable[[], None] | None = None,
    retryable: Callable[[BaseException], bool] = is_transient,
) -> T:
    """Run ``operation`` until it succeeds or fails permanently (that error is raised).
    ``retryable`` says which errors are retried (by default the transient ones)."""
    attempt = 0
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not retryable(exc):
                raise
            attempt += 1
            wait_s = backoff_s(attempt, max_wait_s)
            log.warning("%s failed (%s); retry %d in %.1f s", what, _reason(exc), attempt, wait_s)
            if on_retry is not None:
                on_retry()
            await clock.sleep(wait_s)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
