"""Real Postgres, RabbitMQ and Redis for every test session, each run under its own names.

The local services are used when they answer (``LECTR_TEST_DATABASE_URL`` and
``LECTR_TEST_AMQP_URL`` point elsewhere); otherwise testcontainers starts them when
Docker is available; otherwise the tests that need them are skipped with the reason,
or fail when ``LECTR_TEST_REQUIRE_SERVICES=1`` (as CI sets it).

Each session creates, migrates and finally drops its own database
``lectr_test_<run id>`` and uses broker names prefixed ``lectr_test_<run id>``.

To simulate an outage without stopping the shared services, connect through
``postgres_forwarder``, ``amqp_forwarder`` or ``redis_forwarder``
(``forwarder.url_for(url)``) and call ``cut()`` (or ``stall()``) and ``restore()`` on it.
Redis (``LECTR_TEST_REDIS_URL``, default the local one) is used as it is: tests keep
apart by key.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlsplit

import aio_pika
import asyncpg
import pytest

from lectr import migrations
from lectr.broker import BrokerNames, declare_topology, delete_topology
from lectr.db import asyncpg_dsn, drop_database, with_database
from tests.support.forwarder import TcpForwarder
from tests.support.providers import FakeProviders

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

# Fixtures every test folder may use.
pytest_plugins = ["tests.support.smtp"]

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DELIVERY_LIMIT = 2
REPLAY_MAX_AGE = "1D"


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1.0):
            return True
    except OSError:
        return False


def unavailable(message: str) -> NoReturn:
    """Skip the test for want of something outside the project, saying what; fail
    instead under ``LECTR_TEST_REQUIRE_SERVICES=1`` (CI), where nothing may be missing."""
    if os.environ.get("LECTR_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _service_url(
    request: pytest.FixtureRequest,
    what: str,
    variable: str,
    default: str,
    start_container: Callable[[], tuple[DockerContainer, str]],
) -> str:
    """The local service's URL when it answers, else one in a container, else skip/fail."""
    url = os.environ.get(variable, default)
    if _answers(url):
        return url
    try:
        container, container_url = start_container()
    except Exception as exc:  # Docker missing or broken: say why, then skip or fail
        unavailable(
            f"{what} unavailable: nothing answers at {url} and testcontainers failed: {exc}"
        )
    request.addfinalizer(container.stop)
    return container_url


def _postgres_container() -> tuple[DockerContainer, str]:
    with warnings.catch_warnings():  # testcontainers deprecates its own helpers
        warnings.simplefilter("ignore", DeprecationWarning)
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:16-alpine", driver=None).start()
    return container, container.get_connection_url()


def _rabbitmq_container() -> tuple[DockerContainer, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from testcontainers.community.rabbitmq import RabbitMqContainer

        container = RabbitMqContainer("rabbitmq:3.13-alpine").start()
    host = container.get_container_host_ip()
    port = container.get_exposed_port(container.port)
    return container, f"amqp://{container.username}:{container.password}@{host}:{port}/"


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def postgres_server_url(request: pytest.FixtureRequest) -> str:
    """A URL of a Postgres server where the tests may create databases."""
    return _service_url(
        request, "Postgres", "LECTR_TEST_DATABASE_URL", DEFAULT_PG, _postgres_container
    )


@pytest.fixture(scope="session")
def amqp_url(request: pytest.FixtureRequest) -> str:
    return _service_url(
        request, "RabbitMQ", "LECTR_TEST_AMQP_URL", DEFAULT_AMQP, _rabbitmq_container
    )


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The local Redis (``LECTR_TEST_REDIS_URL``). Tests keep apart by key: every limit
    key names an organisation id, which is new in each test."""
    url = os.environ.get("LECTR_TEST_REDIS_URL", DEFAULT_REDIS)
    if not _answers(url):
        unavailable(f"Redis unavailable: nothing answers at {url}")
    return url


def migrated_database(server_url: str, name: str) -> Iterator[str]:
    """A database ``name`` on the server, migrated to head; dropped when closed."""
    url = with_database(server_url, name)
    migrations.migrate(url)
    yield url
    asyncio.run(drop_database(url))


def broker_topology(amqp_url: str, prefix: str) -> Iterator[BrokerNames]:
    """Broker names under ``prefix``; everything under them is deleted when closed."""
    names = BrokerNames(prefix=prefix)
    yield names

    async def cleanup() -> None:
        connection = await aio_pika.connect(amqp_url)
        async with connection, connection.channel() as channel:
            await delete_topology(channel, names)

    asyncio.run(cleanup())


@pytest.fixture(scope="session")
def database_url(postgres_server_url: str, run_id: str) -> Iterator[str]:
    """This session's own database, migrated to head, dropped at the end."""
    yield from migrated_database(postgres_server_url, f"lectr_test_{run_id}")


@pytest.fixture
def scratch_database_url(postgres_server_url: str) -> Iterator[str]:
    """An empty database (not migrated) for one test, dropped afterwards."""
    url = with_database(postgres_server_url, f"lectr_scratch_{uuid.uuid4().hex[:10]}")
    yield url
    asyncio.run(drop_database(url))


@pytest.fixture(scope="session")
def broker_names(amqp_url: str, run_id: str) -> Iterator[BrokerNames]:
    """This session's broker names; everything under them is deleted at the end."""
    yield from broker_topology(amqp_url, f"lectr_test_{run_id}")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    yield conn
    await conn.close()


@pytest.fixture
async def amqp(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractRobustConnection]:
    connection = await aio_pika.connect(amqp_url)
    yield connection
    await connection.close()


@pytest.fixture
async def topology(amqp: aio_pika.abc.AbstractConnection, broker_names: BrokerNames):
    """The session's topology, declared (idempotently) on a fresh channel."""
    channel = await amqp.channel()
    yield await declare_topology(channel, broker_names, replay_max_age=REPLAY_MAX_AGE)
    await channel.close()


def _forwarder(url: str) -> Iterator[TcpForwarder]:
    target = urlsplit(url)
    with TcpForwarder(target.hostname or "127.0.0.1", target.port or 0) as forwarder:
        yield forwarder


@pytest.fixture
def redis_forwarder(redis_url: str) -> Iterator[TcpForwarder]:
    """A forwarder to Redis: connect through ``url_for(redis_url)``, then cut or stall it."""
    yield from _forwarder(redis_url)


@pytest.fixture
def postgres_forwarder(postgres_server_url: str) -> Iterator[TcpForwarder]:
    """A forwarder to the Postgres server: connect through ``url_for(url)``, then cut it."""
    yield from _forwarder(postgres_server_url)


@pytest.fixture
def amqp_forwarder(amqp_url: str) -> Iterator[TcpForwarder]:
    """A forwarder to RabbitMQ: connect through ``url_for(amqp_url)``, then cut it."""
    yield from _forwarder(amqp_url)


@pytest.fixture
async def fake() -> AsyncIterator[FakeProviders]:
    """Simulated LLM providers on a local port (see tests.support.providers)."""
    providers = FakeProviders()
    runner = await providers.start()
    yield providers
    await runner.cleanup()


@pytest.fixture
def lectr_env(
    database_url: str, amqp_url: str, broker_names: BrokerNames, tmp_path: Path
) -> dict[str, str]:
    """The environment for running the ``lectr`` command against this session's services
    (a proxy's spool in the test's own directory, never the user's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LECTR_")}
    env.update(
        LECTR_PROXY_SPOOL_DIR=str(tmp_path / "lectr-spool"),
        LECTR_DATABASE_URL=database_url,
        LECTR_AMQP_URL=amqp_url,
        LECTR_BROKER_PREFIX=broker_names.prefix,
        LECTR_INGEST_DELIVERY_LIMIT=str(DELIVERY_LIMIT),
        LECTR_REPLAY_MAX_AGE=REPLAY_MAX_AGE,
        LECTR_KEY_PEPPER="test-pepper-0123456789abcdef",
    )
    return env
