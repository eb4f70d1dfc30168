"""Daily range partitions of ``request_logs``.

Each UTC day has its own partition, ``request_logs_pYYYYMMDD``, so that retention is a
cheap ``DROP TABLE`` and a day's queries touch one table. ``request_logs_default``
catches rows outside every daily partition so an insert never fails for want of one;
the partition upkeep job keeps it empty by creating days ahead of time.

The first migration creates partitions with the SQL builders here (``op.execute``);
afterwards :func:`ensure_partitions` adds days over a live connection (``lectr migrate``
and the scheduler's partition upkeep), moving any rows the default partition caught
for those days into their new partition.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import asyncpg

PARENT = "request_logs"
DEFAULT_PARTITION = f"{PARENT}_default"
_NAME_RE = re.compile(rf"^{PARENT}_p(\d{{8}})$")


def partition_name(day: date) -> str:
    """The name of the partition holding rows created on ``day`` (UTC)."""
    return f"{PARENT}_p{day:%Y%m%d}"


def partition_day(name: str) -> date | None:
    """The day a daily partition holds, or None if ``name`` is not one."""
    match = _NAME_RE.match(name)
    if match is None:
        return None
    return datetime.strptime(match.group(1), "%Y%m%d").date()


def is_partition(name: str) -> bool:
    """True for the default and the daily partitions (not for the parent table)."""
    return name == DEFAULT_PARTITION or partition_day(name) is not None


def days_to_cover(today: date, days_ahead: int, days_behind: int = 0) -> list[date]:
    """The days from ``today - days_behind`` to ``today + days_ahead``, inclusive."""
    return [today + timedelta(days=offset) for offset in range(-days_behind, days_ahead + 1)]


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants a day's partition holds: ``start <= created_at < end``."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _bounds_sql(day: date) -> str:
    start, end = day_bounds(day)
    return f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"


def create_partition_sql(day: date) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for the partition of ``day``."""
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF {PARENT} {_bounds_sql(day)}"
    )


def create_default_partition_sql() -> str:
    return f"CREATE TABLE IF NOT EXISTS {DEFAULT_PARTITION} PARTITION OF {PARENT} DEFAULT"


def drop_partition_sql(day: date) -> str:
    return f"DROP TABLE IF EXISTS {partition_name(day)}"


LIST_PARTITIONS_SQL = f"""
SELECT child.relname
FROM pg_inherits
JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
JOIN pg_class child ON child.oid = pg_inherits.inhrelid
WHERE parent.relname = '{PARENT}'
ORDER BY child.relname
"""


# Serialises partition changes between processes (`lectr migrate`, the scheduler's
# partition upkeep, which takes it too while it drops expired days).
PARTITION_LOCK_ID = 0x1EC7_0002


async def ensure_partitions(conn: asyncpg.Connection, days: Iterable[date]) -> list[str]:
    """Create the daily partitions of ``days`` that do not exist yet; return their names.

    Rows the default partition holds for such a day are moved into the new partition
    in the same transaction, so creating a day late never fails and loses nothing.
    Inserts that would land in the default partition wait for that transaction; inserts
    into existing days do not. Safe to run from several processes at once.
    """
    created = []
    for day in days:
        name = partition_name(day)
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK_ID)
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name):
                continue
            start, end = day_bounds(day)
            await conn.execute(f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE")
            await conn.execute(
                f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            )
            await conn.execute(
                f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "
                "WHERE created_at >= $1 AND created_at < $2 RETURNING *) "
                f"INSERT INTO {name} SELECT * FROM moved",
                start,
                end,
            )
            await conn.execute(f"ALTER TABLE {PARENT} ATTACH PARTITION {name} {_bounds_sql(day)}")
        created.append(name)
    return created
