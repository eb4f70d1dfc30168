"""Tests for the outage-simulating TCP forwarder, against the real local services."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import aio_pika
import asyncpg
import pytest

from tests.support.forwarder import TcpForwarder

pytestmark = pytest.mark.timeout(30)

# What asyncpg raises when its socket goes away (ConnectionError, not OSError: a cut must
# fail fast, never surface as a TimeoutError).
PG_CONNECTION_ERRORS = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, ConnectionError)


class EchoServer:
    """A tiny asyncio echo server that echoes until EOF, then half-closes back."""

    def __init__(self) -> None:
        self.accepted = 0
        self.open = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def _on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.get_running_loop().create_task(self._echo(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.write_eof()
        except ConnectionError:
            pass
        finally:
            self.open -= 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = EchoServer()
    await server.start()
    yield server
    await server.close()


async def wait_until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Poll ``predicate()`` until true, failing after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached before deadline"
        await asyncio.sleep(0.01)


def recv_eof(sock: socket.socket) -> bytes:
    """Blocking read of one byte; a reset counts as EOF (b"")."""
    try:
        return sock.recv(1)
    except ConnectionResetError:
        return b""


async def read_eof(reader: asyncio.StreamReader) -> bytes:
    """Read until EOF (bounded); a reset counts as EOF (b"")."""
    try:
        return await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        return b""


async def echo_roundtrip(fwd: TcpForwarder, payload: bytes) -> bytes:
    """Send ``payload``, half-close, and return everything echoed back until EOF."""
    reader, writer = await asyncio.open_connection(fwd.host, fwd.port)
    try:

        async def send() -> None:
            writer.write(payload)
            await writer.drain()
            writer.write_eof()

        _, received = await asyncio.wait_for(asyncio.gather(send(), reader.read()), 10)
        return received
    finally:
        writer.close()
        await writer.wait_closed()


def test_url_for_replaces_only_host_and_port() -> None:
    with TcpForwarder("db.invalid", 5432) as fwd:
        assert fwd.host == "127.0.0.1" and fwd.port > 0
        assert (
            fwd.url_for("postgresql://u:p%40ss@db.invalid:5432/app?sslmode=disable")
            == f"postgresql://u:p%40ss@127.0.0.1:{fwd.port}/app?sslmode=disable"
        )
        assert fwd.url_for("amqp://guest:guest@rabbit/%2F") == (
            f"amqp://guest:guest@127.0.0.1:{fwd.port}/%2F"
        )
        assert fwd.url_for("postgresql://localhost/db") == f"postgresql://127.0.0.1:{fwd.port}/db"


async def test_echo_bytes_unchanged_both_ways(echo: EchoServer) -> None:
    with TcpForwarder("127.0.0.1", echo.port) as fwd:
        assert await echo_roundtrip(fwd, b"hello\x00\xff") == b"hello\x00\xff"
        big = os.urandom(4 * 1024 * 1024 + 7)
        assert await echo_roundtrip(fwd, big) == big
        assert await echo_roundtrip(fwd, b"") == b""  # pure half-close round trip
        assert fwd.connections_accepted == 3
        await wait_until(lambda: fwd.active_connections == 0)


async def test_echo_cut_drops_open_and_rejects_new_connections(echo: EchoServer) -> None:
    with TcpForwarder("127.0.0.1", echo.port) as fwd:
        reader, writer = await asyncio.open_connection(fwd.host, fwd.port)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
        assert fwd.active_connections == 1

        fwd.cut()
        assert fwd.active_connections == 0
        assert await read_eof(reader) == b""
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        await wait_until(lambda: echo.open == 0)  # the target side was dropped too

        reader, writer = await asyncio.open_connection(fwd.host, fwd.port)
        assert await read_eof(reader) == b""  # closed at once while cut
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        assert fwd.connections_accepted == 2
        assert echo.accepted == 1  # the target was not contacted while cut

        fwd.restore()
        assert await echo_roundtrip(fwd, b"back") == b"back"
        assert echo.accepted == 2


def test_sync_socket_and_close_stops_thread(postgres_server_url: str) -> None:
    threads_before = set(threading.enumerate())
    target = urlsplit(postgres_server_url)
    fwd = TcpForwarder(target.hostname or "127.0.0.1", target.port or 5432).start()
    started = set(threading.enumerate()) - threads_before
    assert started  # the forwarder's own thread
    with socket.create_connection((fwd.host, fwd.port), timeout=5) as sock:
        sock.sendall(struct.pack("!ii", 8, 80877103))  # SSLRequest
        assert sock.recv(1) in (b"S", b"N")  # the real server answered
        fwd.cut()
        assert recv_eof(sock) == b""
    with socket.create_connection((fwd.host, fwd.port), timeout=5) as sock:
        fwd.close()  # with a connection in flight
        assert recv_eof(sock) == b""
    fwd.close()  # idempotent
    assert not any(thread.is_alive() for thread in started)


async def test_asyncpg_cut_and_restore(
    postgres_forwarder: TcpForwarder, postgres_server_url: str
) -> None:
    pg_fwd = postgres_forwarder
    url = pg_fwd.url_for(postgres_server_url)
    busy = await asyncpg.connect(url, timeout=5)
    idle = await asyncpg.connect(url, timeout=5)
    try:
        assert await busy.fetchval("SELECT 1") == 1
        assert await idle.fetchval("SELECT 1") == 1
        assert pg_fwd.active_connections == 2

        pg_fwd.cut()
        assert pg_fwd.active_connections == 0
        # Queried before its event loop saw the EOF: fails in the middle of the operation.
        with pytest.raises(asyncpg.ConnectionDoesNotExistError):
            await asyncio.wait_for(busy.fetchval("SELECT 1"), 5)
        assert busy.is_closed()
        # Left idle: asyncpg notices the EOF by itself and then refuses to query.
        await wait_until(idle.is_closed)
        with pytest.raises(asyncpg.InterfaceError, match="closed"):
            await idle.fetchval("SELECT 1")

        accepted = pg_fwd.connections_accepted
        with pytest.raises(PG_CONNECTION_ERRORS):
            await asyncpg.connect(url, timeout=5)
        assert pg_fwd.connections_accepted > accepted
        assert pg_fwd.active_connections == 0
    finally:
        busy.terminate()
        idle.terminate()

    pg_fwd.restore()
    conn = await asyncpg.connect(url, timeout=5)
    try:
        assert await conn.fetchval("SELECT $1::int + 1", 41) == 42
    finally:
        await conn.close(timeout=5)


async def test_aio_pika_cut_and_restore(amqp_forwarder: TcpForwarder, amqp_url: str) -> None:
    amqp_fwd = amqp_forwarder
    url = amqp_fwd.url_for(amqp_url)
    conn = await asyncio.wait_for(aio_pika.connect(url), 10)
    lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def on_close(_sender: object, exc: BaseException | None = None) -> None:
        if not lost.done():
            lost.set_result(exc)

    # aio-pika 10: Connection.closed() and .is_closed only reflect an explicit close();
    # losing the socket is reported through close_callbacks (and .connected is cleared).
    conn.close_callbacks.add(on_close)
    try:
        channel = await conn.channel()
        await channel.declare_queue(exclusive=True)
        amqp_fwd.cut()
        reason = await asyncio.wait_for(lost, 5)
        assert isinstance(reason, aio_pika.exceptions.AMQPConnectionError)
        assert not conn.connected.is_set()
        with pytest.raises(aio_pika.exceptions.AMQPConnectionError):
            await asyncio.wait_for(aio_pika.connect(url), 5)
    finally:
        await conn.close()

    amqp_fwd.restore()
    conn = await asyncio.wait_for(aio_pika.connect(url), 10)
    async with conn:
        channel = await conn.channel()
        queue = await channel.declare_queue(exclusive=True)
        await channel.default_exchange.publish(aio_pika.Message(b"hi"), routing_key=queue.name)
        message = await queue.get(timeout=5, fail=False)
        assert message is not None and message.body == b"hi"
        await message.ack()
