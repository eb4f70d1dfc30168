"""Daily range partitions of ``request_logs``.

Each UTC day has its own partition, ``request_logs_pYYYYMMDD``, so that retention is a
cheap ``DROP TABLE`` and a day's queries touch one table. ``request_logs_default``
catches rows outside every daily partition so an insert never fails for want of one;
the partition upkeep job keeps it empty by creating days ahead of time.

The helpers here return SQL text so they run the same from an Alembic migration
(``op.execute``) and from an asyncpg connection (the scheduler).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

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


def create_partition_sql(day: date) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for the partition of ``day``."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF {PARENT} "
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
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
