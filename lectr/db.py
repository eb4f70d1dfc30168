"""Postgres helpers shared by every process: URLs, connections, pools, database creation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import asyncpg

from lectr.settings import redact_url

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0

# Errors that mean "the server could not be reached", as opposed to a bad query.
UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
)


class DatabaseUnavailable(RuntimeError):
    """Postgres could not be reached or refused the connection.

    The message names ``LECTR_DATABASE_URL`` and never shows a password.
    """

    def __init__(self, url: str, reason: BaseException | str) -> None:
        detail = str(reason) or type(reason).__name__
        super().__init__(
            f"cannot reach the database at LECTR_DATABASE_URL ({redact_url(url)}): {detail}"
        )


def asyncpg_dsn(url: str) -> str:
    """Return ``url`` in the form asyncpg accepts (``postgresql://``)."""
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql+asyncpg", "postgres"):
        return f"postgresql{sep}{rest}"
    return url


def sqlalchemy_url(url: str) -> str:
    """Return ``url`` with the ``postgresql+asyncpg`` driver SQLAlchemy and Alembic use."""
    _, sep, rest = url.partition("://")
    return f"postgresql+asyncpg{sep}{rest}"


def database_name(url: str) -> str:
    """The database named by ``url``."""
    return urlsplit(url).path.lstrip("/")


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` on the same server, with the same user."""
    parts = urlsplit(url)
    return parts._replace(path=f"/{name}").geturl()


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (a database or table name)."""
    return '"' + name.replace('"', '""') + '"'


async def connect(url: str, *, timeout_s: float = CONNECT_TIMEOUT_S) -> asyncpg.Connection:
    """Open one connection, turning "cannot reach" failures into :class:`DatabaseUnavailable`.

    A missing database raises ``asyncpg.InvalidCatalogNameError`` unchanged.
    """
    try:
        return await asyncpg.connect(asyncpg_dsn(url), timeout=timeout_s)
    except (*UNREACHABLE_ERRORS, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise DatabaseUnavailable(url, exc) from exc


@asynccontextmanager
async def connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    """One connection for the duration of the block (CLI commands, migrations, tests)."""
    conn = await connect(url)
    try:
        yield conn
    finally:
        await conn.close()


async def create_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
) -> asyncpg.Pool:
    """A connection pool for a long-running process. With ``min_size=0`` it opens no
    connection up front, so a process whose database is down at start-up starts anyway
    and waits for it like for one that goes down later."""
    try:
        pool = await asyncpg.create_pool(
            asyncpg_dsn(url), min_size=min_size, max_size=max_size, timeout=connect_timeout_s
        )
    except (*UNREACHABLE_ERRORS, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise DatabaseUnavailable(url, exc) from exc
    assert pool is not None
    return pool


async def ensure_database(url: str, *, maintenance_db: str = "postgres") -> bool:
    """Create the database named in ``url`` if it does not exist.

    Connects to ``maintenance_db`` on the same server to do so. Returns True when it
    created the database. Safe to run from several processes at once.
    """
    try:
        conn = await connect(url)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    async with connection(with_database(url, maintenance_db)) as admin:
        try:
            await admin.execute(f"CREATE DATABASE {quote_ident(database_name(url))}")
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            # Another process created it first (a race shows up as the unique violation).
            return False
    return True


async def drop_database(url: str, *, maintenance_db: str = "postgres") -> None:
    """Drop the database named in ``url``, closing its connections (tests, tear-down)."""
    async with connection(with_database(url, maintenance_db)) as admin:
        await admin.execute(
            f"DROP DATABASE IF EXISTS {quote_ident(database_name(url))} WITH (FORCE)"
        )


async def close_pool(pool: asyncpg.Pool, timeout_s: float = 5.0) -> None:
    """Close ``pool``, waiting up to ``timeout_s`` for connections in use; then cut them."""
    try:
        await asyncio.wait_for(pool.close(), timeout_s)
    except TimeoutError:
        log.warning("database connections did not close in time; closing them hard")
        pool.terminate()
