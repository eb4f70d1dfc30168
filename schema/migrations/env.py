"""Alembic environment: runs migrations over asyncpg, one at a time across processes.

Run through :mod:`lectr.migrations` (``lectr migrate``), which passes the database URL
in ``config.attributes["database_url"]`` (not the ini file, where ``%`` is special).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from lectr.db import sqlalchemy_url
from schema.compare import include_name
from schema.tables import metadata

# Any constant shared by every Lectr process: concurrent `lectr migrate` runs queue up
# behind one another instead of racing to create the same tables.
MIGRATION_LOCK_ID = 0x1EC7_0001


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_name=include_name,
        compare_type=True,
    )
    with context.begin_transaction():
        context.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
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
