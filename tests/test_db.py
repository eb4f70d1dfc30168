"""Database helpers and the CLI's answers when the database is not ready."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from lectr.db import (
    DatabaseUnavailable,
    asyncpg_dsn,
    create_pool,
    ensure_database,
    sqlalchemy_url,
    with_database,
)
from tests.support.cli import run_lectr


def test_url_forms() -> None:
    url = "postgresql://u:p@db:5432/lectr?sslmode=require"
    assert sqlalchemy_url(url) == "postgresql+asyncpg://u:p@db:5432/lectr?sslmode=require"
    assert asyncpg_dsn("postgres://u@db/lectr") == "postgresql://u@db/lectr"
    assert with_database(url, "postgres") == "postgresql://u:p@db:5432/postgres?sslmode=require"


async def test_ensure_database_creates_once(scratch_database_url: str) -> None:
    assert await ensure_database(scratch_database_url) is True
    assert await ensure_database(scratch_database_url) is False


async def test_pool_connects_and_reports_an_unreachable_server(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()
    with pytest.raises(DatabaseUnavailable, match="LECTR_DATABASE_URL"):
        await create_pool("postgresql://postgres@127.0.0.1:1/lectr")


async def test_commands_on_a_missing_database_say_to_migrate(
    scratch_database_url: str, lectr_env: dict[str, str]
) -> None:
    env = {**lectr_env, "LECTR_DATABASE_URL": scratch_database_url}
    result = await asyncio.to_thread(run_lectr, "org", "list", env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "lectr: the database named in LECTR_DATABASE_URL does not exist yet; "
        "run `lectr migrate` first"
    )


async def test_a_failed_migration_is_one_line_and_changes_nothing(
    scratch_database_url: str, lectr_env: dict[str, str]
) -> None:
    # A database that already holds an unrelated table of the same name.
    await ensure_database(scratch_database_url)
    conn = await asyncpg.connect(asyncpg_dsn(scratch_database_url))
    try:
        await conn.execute("CREATE TABLE organizations (legacy int)")
        env = {**lectr_env, "LECTR_DATABASE_URL": scratch_database_url}
        result = await asyncio.to_thread(run_lectr, "migrate", env=env)
        assert result.returncode == 1
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("lectr: migration failed, nothing was changed: ")
        assert "organizations" in last
        tables = {
            r[0]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert tables == {"organizations"}
    finally:
        await conn.close()
