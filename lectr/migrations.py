"""Schema migrations: ``lectr migrate`` creates the database if needed, then upgrades it.

These functions are synchronous (Alembic runs its own event loop); call them from
async code with ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

import schema
from lectr.db import connection, ensure_database
from schema import partitions

MIGRATIONS_DIR = Path(schema.__file__).parent / "migrations"
# Days of request_logs partitions kept ready ahead of today.
PARTITION_DAYS_AHEAD = 14

log = logging.getLogger(__name__)


def alembic_config(database_url: str) -> Config:
    """An Alembic config for ``database_url``, without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = database_url
    return config


def head_revision() -> str:
    """The newest revision in the migration history."""
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert head is not None
    return head


def upgrade(database_url: str, revision: str = "head") -> None:
    """Upgrade the schema to ``revision``."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    """Downgrade the schema to ``revision`` (``base`` removes every table)."""
    command.downgrade(alembic_config(database_url), revision)


def migrate(database_url: str, *, today: date | None = None) -> bool:
    """Create the database if it is missing, upgrade to head, and create the daily
    ``request_logs`` partitions from ``today`` (UTC) to ``PARTITION_DAYS_AHEAD`` ahead.

    Returns True when the database was created. Raises
    :class:`lectr.db.DatabaseUnavailable` when Postgres cannot be reached.
    """
    created = asyncio.run(ensure_database(database_url))
    upgrade(database_url)
    asyncio.run(_ensure_partitions(database_url, today or datetime.now(UTC).date()))
    return created


async def _ensure_partitions(database_url: str, today: date) -> None:
    async with connection(database_url) as conn:
        names = await partitions.ensure_partitions(
            conn, partitions.days_to_cover(today, PARTITION_DAYS_AHEAD)
        )
    if names:
        log.info("created partitions %s", ", ".join(names))


async def current_revision(database_url: str) -> str | None:
    """The revision the database is at, or None before the first migration."""
    async with connection(database_url) as conn:
        exists = await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
        if not exists:
            return None
        return await conn.fetchval("SELECT version_num FROM alembic_version")
