"""Alembic environment: runs migrations over asyncpg, one at a time across processes.

Run through :mod:`lectr.migrations` (``lectr migrate``), which passes the database URL
in ``config.attributes["database_url"]`` (not the ini file, where ``%`` is special).

Migrations run while the previous release is serving, so they follow the
expand/contract rules of ``schema/migrations/README.md``. This file makes two of them
automatic:

- every applied migration records its ``oldest_compatible`` declaration in the
  ``schema_compat`` table, in the migration's own transaction (a downgrade deletes the
  row), so a process of an older release, which lacks the newer migration files, can
  still read whether its code runs against the schema (:mod:`lectr.schema_check`);
- every statement waits at most ``lock_timeout_s`` for a table lock: a migration stuck
  behind a long transaction fails (and :func:`lectr.migrations.upgrade` retries it)
  instead of holding every writer of that table in the queue behind it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script.revision import RevisionMap
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from lectr.db import sqlalchemy_url
from schema.compare import include_name
from schema.tables import metadata

# Any constant shared by every Lectr process: concurrent `lectr migrate` runs queue up
# behind one another instead of racing to create the same tables.
MIGRATION_LOCK_ID = 0x1EC7_0001
DEFAULT_LOCK_TIMEOUT_S = 5.0


def _ancestry(revision_map: RevisionMap, revision: str) -> set[str]:
    """``revision`` and every revision before it."""
    seen: set[str] = set()
    pending = [revision]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        script = revision_map.get_revision(current)
        assert script is not None
        down = script.down_revision
        pending.extend((down,) if isinstance(down, str) else down or ())
    return seen


def _oldest_compatible(step: MigrationInfo, previous: str | None) -> str:
    """What the migration of ``step`` declares, checked, and never older than what the
    schema before it already required (``previous``): compatibility only narrows."""
    revision = step.up_revision_id
    assert revision is not None
    script = step.revision_map.get_revision(revision)
    assert script is not None
    # No declaration (migrations before 0006): compatible with its own release only.
    declared = getattr(getattr(script, "module", None), "oldest_compatible", revision)
    if declared not in _ancestry(step.revision_map, revision):
        raise ValueError(
            f"migration {revision} declares oldest_compatible = {declared!r}, "
            "which is neither it nor a revision before it"
        )
    if previous is not None and previous not in _ancestry(step.revision_map, declared):
        return previous
    return declared


def record_compatibility(
    ctx: MigrationContext, step: MigrationInfo, heads: set[Any], run_args: dict[str, Any]
) -> None:
    """Alembic's ``on_version_apply`` hook: keep ``schema_compat`` in step, in the same
    transaction as the migration (once the table exists, from 0006 on)."""
    connection = ctx.connection
    assert connection is not None
    revision = step.up_revision_id
    exists = connection.scalar(sa.text("SELECT to_regclass('schema_compat') IS NOT NULL"))
    if not exists or revision is None:
        return
    if not step.is_upgrade:
        connection.execute(
            sa.text("DELETE FROM schema_compat WHERE revision = :revision"),
            {"revision": revision},
        )
        return
    previous = None
    for down in step.down_revision_ids:
        row = connection.scalar(
            sa.text("SELECT oldest_compatible FROM schema_compat WHERE revision = :revision"),
            {"revision": down},
        )
        previous = row if row is not None else previous
    connection.execute(
        sa.text(
            "INSERT INTO schema_compat (revision, oldest_compatible) "
            "VALUES (:revision, :oldest) ON CONFLICT (revision) DO UPDATE "
            "SET oldest_compatible = EXCLUDED.oldest_compatible, applied_at = now()"
        ),
        {"revision": revision, "oldest": _oldest_compatible(step, previous)},
    )


def do_run_migrations(connection: Connection) -> None:
    lock_timeout_ms = round(
        1000 * context.config.attributes.get("lock_timeout_s", DEFAULT_LOCK_TIMEOUT_S)
    )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_name=include_name,
        compare_type=True,
        on_version_apply=[record_compatibility],
    )
    with context.begin_transaction():
        # Waiting here holds no table lock, so it may wait as long as it takes.
        context.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
        # Session-wide, so it also covers steps run in an autocommit block.
        context.execute(f"SET lock_timeout = {lock_timeout_ms}")
        context.run_migrations()


async def run_async_migrations(url: str) -> None:
    engine = create_async_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    asyncio.run(run_async_migrations(context.config.attributes["database_url"]))


if context.is_offline_mode():
    raise SystemExit("Lectr migrations run online only: use `lectr migrate`.")
run_migrations_online()
