"""Schema migrations: ``lectr migrate`` creates the database if needed, then upgrades it.

These functions are synchronous (Alembic runs its own event loop); call them from
async code with ``asyncio.to_thread``.

Migrations run while the previous release keeps serving (see
``schema/migrations/README.md``): each one takes its table locks with a short
``lock_timeout``, so a long transaction elsewhere makes it fail fast instead of
queueing every writer behind it; :func:`upgrade` then retries the whole (rolled back)
run a few times before giving up with :class:`MigrationLockTimeout`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

import schema
from lectr.db import connection, ensure_database
from schema import partitions

MIGRATIONS_DIR = Path(schema.__file__).parent / "migrations"
VERSIONS_DIR = MIGRATIONS_DIR / "versions"
# How long one migration statement may wait for a table lock before the run fails
# (and is retried): writers queue behind a waiting ALTER for at most this long.
LOCK_TIMEOUT_S = 5.0
# Whole runs tried before giving up on a lock, and the pause between two of them.
LOCK_ATTEMPTS = 3
LOCK_RETRY_PAUSE_S = 2.0
# Postgres' SQLSTATE for "lock_timeout expired".
_LOCK_NOT_AVAILABLE = "55P03"
# Days of request_logs partitions kept ready ahead of today.
PARTITION_DAYS_AHEAD = 14

log = logging.getLogger(__name__)


class MigrationLockTimeout(SQLAlchemyError):
    """Every attempt waited longer than the lock timeout for a table lock."""


def alembic_config(
    database_url: str,
    *,
    extra_versions: Sequence[Path] = (),
    lock_timeout_s: float = LOCK_TIMEOUT_S,
) -> Config:
    """An Alembic config for ``database_url``, without an ini file.

    ``extra_versions`` are more folders of migration files, after this release's own
    (the tests use one to play the next release's migrations).
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if extra_versions:
        config.set_main_option("path_separator", "os")
        folders = [VERSIONS_DIR, *extra_versions]
        config.set_main_option("version_locations", os.pathsep.join(map(str, folders)))
    config.attributes["database_url"] = database_url
    config.attributes["lock_timeout_s"] = lock_timeout_s
    return config


def head_revision() -> str:
    """The newest revision in the migration history."""
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert head is not None
    return head


def known_revisions() -> tuple[str, frozenset[str]]:
    """This release's head revision, and it with every revision before it."""
    script = ScriptDirectory.from_config(alembic_config(""))
    head = script.get_current_head()
    assert head is not None
    return head, frozenset(rev.revision for rev in script.walk_revisions("base", head))


def upgrade(
    database_url: str,
    revision: str = "head",
    *,
    extra_versions: Sequence[Path] = (),
    lock_timeout_s: float = LOCK_TIMEOUT_S,
    attempts: int = LOCK_ATTEMPTS,
) -> None:
    """Upgrade the schema to ``revision``.

    A run that waits longer than ``lock_timeout_s`` for a table lock is rolled back
    whole and tried again, up to ``attempts`` times; then :class:`MigrationLockTimeout`.
    """
    config = alembic_config(
        database_url, extra_versions=extra_versions, lock_timeout_s=lock_timeout_s
    )
    for attempt in range(1, attempts + 1):
        try:
            command.upgrade(config, revision)
            return
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                raise
            if attempt == attempts:
                raise MigrationLockTimeout(
                    f"a table stayed locked by another transaction for more than "
                    f"{lock_timeout_s:g} s, {attempts} times: find the long transaction "
                    "in pg_stat_activity, let it finish, and run `lectr migrate` again"
                ) from exc
            log.warning(
                "a migration waited more than %g s for a table lock; rolled back, "
                "trying again (attempt %d of %d)",
                lock_timeout_s,
                attempt + 1,
                attempts,
            )
            time.sleep(LOCK_RETRY_PAUSE_S * attempt)


def downgrade(database_url: str, revision: str, *, extra_versions: Sequence[Path] = ()) -> None:
    """Downgrade the schema to ``revision`` (``base`` removes every table)."""
    command.downgrade(alembic_config(database_url, extra_versions=extra_versions), revision)


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
