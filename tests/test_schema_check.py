"""The start-up schema check (lectr.schema_check), schema_compat, and migration locks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from lectr import migrations, schema_check
from lectr.db import asyncpg_dsn, ensure_database
from lectr.schema_check import Outcome, Release
from tests.support.releases import NEXT_RELEASE_CONTRACT, NEXT_RELEASE_EXPAND, NEXT_REVISION

HEAD = "0006"


@pytest.fixture(scope="module")
def release() -> Release:
    return schema_check.load_release()


@pytest.fixture
async def migrated(scratch_database_url: str) -> str:
    """A scratch database migrated to this release's head."""
    await asyncio.to_thread(migrations.migrate, scratch_database_url)
    return scratch_database_url


@pytest.fixture
async def conn(scratch_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    await ensure_database(scratch_database_url)
    connection = await asyncpg.connect(asyncpg_dsn(scratch_database_url))
    yield connection
    await connection.close()


async def _compat(conn: asyncpg.Connection) -> dict[str, str]:
    rows = await conn.fetch("SELECT revision, oldest_compatible FROM schema_compat")
    return {r[0]: r[1] for r in rows}


async def test_this_release_knows_its_head_and_history(release: Release) -> None:
    assert release.head == migrations.head_revision() == HEAD
    assert release.history == {"0001", "0002", "0003", "0004", "0005", "0006"}


async def test_at_head_is_ok(db: asyncpg.Connection, release: Release) -> None:
    result = await schema_check.check_schema(db, release)
    assert (result.outcome, result.current, result.ok) == (Outcome.AT_HEAD, HEAD, True)


async def test_no_schema_says_to_migrate(conn: asyncpg.Connection, release: Release) -> None:
    result = await schema_check.check_schema(conn, release)
    assert (result.outcome, result.current, result.ok) == (Outcome.MIGRATE, None, False)
    assert result.message.endswith("run `lectr migrate`")
    with pytest.raises(schema_check.IncompatibleSchema, match="no Lectr schema"):
        await schema_check.require_compatible_schema(conn, release, logging.getLogger("t"))


async def test_an_older_schema_says_to_migrate(
    migrated: str, conn: asyncpg.Connection, release: Release
) -> None:
    await asyncio.to_thread(migrations.downgrade, migrated, "0005")
    result = await schema_check.check_schema(conn, release)
    assert result.outcome is Outcome.MIGRATE
    assert result.message == "the database schema is at 0005, not 0006: run `lectr migrate`"


async def test_a_newer_compatible_schema_runs_with_a_warning(
    migrated: str,
    conn: asyncpg.Connection,
    release: Release,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await asyncio.to_thread(migrations.upgrade, migrated, extra_versions=[NEXT_RELEASE_EXPAND])
    assert await _compat(conn) == {HEAD: "0005", NEXT_REVISION: HEAD}
    log = logging.getLogger("test.schema")
    with caplog.at_level(logging.WARNING, logger="test.schema"):
        result = await schema_check.require_compatible_schema(conn, release, log)
    assert (result.outcome, result.current) == (Outcome.NEWER_COMPATIBLE, NEXT_REVISION)
    assert [r.getMessage() for r in caplog.records] == [
        "the database schema 0007 is newer than this release (0006) and declares itself "
        "compatible with it: running"
    ]
    assert caplog.records[0].levelno == logging.WARNING


async def test_a_newer_contracted_schema_is_refused_as_too_new(
    migrated: str, conn: asyncpg.Connection, release: Release
) -> None:
    await asyncio.to_thread(migrations.upgrade, migrated, extra_versions=[NEXT_RELEASE_CONTRACT])
    assert (await _compat(conn))[NEXT_REVISION] == NEXT_REVISION
    result = await schema_check.check_schema(conn, release)
    assert result.outcome is Outcome.TOO_OLD
    assert result.message == (
        "this release of Lectr (schema 0006) is too old for the database schema 0007, "
        "which needs the code of schema 0007 or newer: upgrade Lectr, or run the release "
        "that matches the database"
    )
    with pytest.raises(schema_check.IncompatibleSchema, match="too old"):
        await schema_check.require_compatible_schema(conn, release, logging.getLogger("t"))


async def test_a_newer_schema_without_a_declaration_is_refused(
    migrated: str, conn: asyncpg.Connection, release: Release
) -> None:
    await asyncio.to_thread(migrations.upgrade, migrated, extra_versions=[NEXT_RELEASE_EXPAND])
    await conn.execute("DELETE FROM schema_compat WHERE revision = $1", NEXT_REVISION)
    result = await schema_check.check_schema(conn, release)
    assert result.outcome is Outcome.TOO_OLD
    assert "declares no older code" in result.message


async def test_schema_compat_follows_upgrades_and_downgrades(
    migrated: str, conn: asyncpg.Connection
) -> None:
    extra = [NEXT_RELEASE_EXPAND]
    await asyncio.to_thread(migrations.upgrade, migrated, extra_versions=extra)
    await asyncio.to_thread(migrations.downgrade, migrated, HEAD, extra_versions=extra)
    assert await _compat(conn) == {HEAD: "0005"}
    assert await migrations.current_revision(migrated) == HEAD

    await asyncio.to_thread(migrations.downgrade, migrated, "0005")
    assert await conn.fetchval("SELECT to_regclass('schema_compat')") is None

    await asyncio.to_thread(migrations.upgrade, migrated)
    assert await _compat(conn) == {HEAD: "0005"}


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(migrations, "LOCK_RETRY_PAUSE_S", 0.1)


async def _hold_lock(url: str) -> tuple[asyncpg.Connection, asyncpg.transaction.Transaction]:
    """A transaction that keeps reading request_logs open (a long report, say)."""
    holder = await asyncpg.connect(asyncpg_dsn(url))
    transaction = holder.transaction()
    await transaction.start()
    await holder.execute("LOCK TABLE request_logs IN ACCESS SHARE MODE")
    return holder, transaction


async def test_a_migration_behind_a_long_transaction_fails_fast_and_changes_nothing(
    migrated: str, quick_retries: None
) -> None:
    holder, transaction = await _hold_lock(migrated)
    try:
        started = time.monotonic()
        with pytest.raises(migrations.MigrationLockTimeout, match="stayed locked"):
            await asyncio.to_thread(
                migrations.upgrade,
                migrated,
                extra_versions=[NEXT_RELEASE_EXPAND],
                lock_timeout_s=0.3,
                attempts=2,
            )
        assert time.monotonic() - started < 10
    finally:
        await transaction.rollback()
        await holder.close()
    assert await migrations.current_revision(migrated) == HEAD


async def test_a_migration_retries_once_the_long_transaction_ends(
    migrated: str, quick_retries: None
) -> None:
    holder, transaction = await _hold_lock(migrated)
    upgrade = asyncio.create_task(
        asyncio.to_thread(
            migrations.upgrade,
            migrated,
            extra_versions=[NEXT_RELEASE_EXPAND],
            lock_timeout_s=0.3,
            attempts=5,
        )
    )
    try:
        await asyncio.sleep(0.6)
        assert not upgrade.done()
    finally:
        await transaction.rollback()
        await holder.close()
    await asyncio.wait_for(upgrade, 20)
    assert await migrations.current_revision(migrated) == NEXT_REVISION
