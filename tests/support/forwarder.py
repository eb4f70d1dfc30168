"""A TCP forwarder for simulating outages of a real service in tests.

Put a :class:`TcpForwarder` between a client and a shared service (PostgreSQL,
RabbitMQ, ...) and call :meth:`TcpForwarder.cut` to make the service "disappear"
for that client only, then :meth:`TcpForwarder.restore` to bring it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

_T = TypeVar("_T")
_BUFFER_SIZE = 256 * 1024


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stalled: Callable[[], bool]
) -> None:
    """Copy bytes until EOF, then half-close ``writer``; bytes read while ``stalled()``
    are held until it is false. Raises OSError on I/O failure."""
    while data := await reader.read(_BUFFER_SIZE):
        while stalled():  # noqa: ASYNC110 (set from the test's thread: polled, not awaited)
            await asyncio.sleep(0.005)
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


class TcpForwarder:
    """Forward TCP connections from an ephemeral local port to ``target_host:target_port``.

    The forwarder runs its own asyncio event loop in a daemon thread, so it can be used
    from sync and async tests alike and is independent of the test's event loop.
    All public methods are thread-safe and may be called from any thread except the
    forwarder's own; :meth:`start`, :meth:`cut`, :meth:`restore` and :meth:`close`
    block the calling thread (and thus its event loop, if any) until done.
    Counters are plain ints updated on the forwarder thread; reading them is safe.
    """

    def __init__(
        self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1"
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        #: The address and port the forwarder listens on (the port is set by :meth:`start`).
        self.host = listen_host
        self.port = 0
        #: Incoming connections accepted so far, including those rejected while cut.
        self.connections_accepted = 0
        #: Connections currently being forwarded (or connecting to the target).
        self.active_connections = 0
        self._is_cut = False
        self._is_stalled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def url_for(self, url: str) -> str:
        """Return ``url`` with its host:port replaced by the forwarder's (userinfo,
        path, query and fragment are kept). Only valid after :meth:`start`."""
        parts = urlsplit(url)
        userinfo, at, _ = parts.netloc.rpartition("@")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return urlunsplit(parts._replace(netloc=f"{userinfo}{at}{host}:{self.port}"))

    # -- lifecycle (caller's thread) -------------------------------------------------

    def start(self) -> Self:
        """Start the thread and listen. Blocks until listening; returns ``self``."""
        if self._thread is not None:
            raise RuntimeError("TcpForwarder already started")
        self._is_cut = False
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=self._run, args=(loop,), name=f"TcpForwarder->{self.target_port}", daemon=True
        )
        self._thread.start()
        try:
            self._call(self._listen)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Drop all connections, stop listening and join the thread. Blocks; idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if thread.is_alive():
                self._call(self._shutdown)
        finally:
            if not loop.is_closed():
                loop.call_soon_threadsafe(loop.stop)
            thread.join()
            self._loop = self._thread = None

    def cut(self) -> None:
        """Simulate an outage: abort every open forwarded connection on both sides and
        reject (close at once, without contacting the target) new ones until
        :meth:`restore`. Blocks until the open connections are closed."""
        self._call(self._cut)

    def stall(self) -> None:
        """Simulate a hung service: connections stay open, but no byte goes through
        (either way) until :meth:`restore`."""
        self._is_stalled = True

    def restore(self) -> None:
        """End the outage: connections accepted from now on are forwarded again, and
        stalled bytes flow."""
        self._is_stalled = False
        self._call(self._restore)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, func: Callable[[], Coroutine[Any, Any, _T]], timeout: float = 10.0) -> _T:
        """Run ``func()`` on the forwarder loop and block until it returns."""
        loop = self._loop
        if loop is None or loop.is_closed():
            raise RuntimeError("TcpForwarder is not running")
        if threading.current_thread() is self._thread:
            raise RuntimeError("TcpForwarder methods must not be called from its own thread")
        return asyncio.run_coroutine_threadsafe(func(), loop).result(timeout)

    # -- forwarder thread ------------------------------------------------------------

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            # Cancel leftovers; the run_until_complete calls also run socket-closing callbacks.
            while pending := asyncio.all_tasks(loop):
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._on_accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        self._is_cut = True  # connections still being accepted are dropped at once
        server = self._server
        if server is not None:
            # Stop accepting, but let accepts in flight finish before closing the server:
            # on Python 3.11 that would leak their sockets (AssertionError in Server._attach).
            loop = asyncio.get_running_loop()
            for sock in server.sockets:
                loop.remove_reader(sock.fileno())
        await self._drop_all()
        if in_flight := asyncio.all_tasks() - {asyncio.current_task()}:
            await asyncio.wait(in_flight, timeout=5)
        if server is not None:
            server.close()
            await server.wait_closed()  # 3.12+ also waits for the connections to be gone

    async def _cut(self) -> None:
        self._is_cut = True
        await self._drop_all()

    async def _restore(self) -> None:
        self._is_cut = False

    async def _drop_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def _on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_accepted += 1
        task = asyncio.get_running_loop().create_task(self._forward(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._forget, writer))

    def _forget(self, writer: asyncio.StreamWriter, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        # A task cancelled before its first step never runs its ``finally``; a no-op otherwise.
        writer.transport.abort()

    async def _forward(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        """Serve one client connection; the task may be cancelled by cut/close."""
        if self._is_cut:
            await self._close_all([cwriter], abort=True)
            return
        writers = [cwriter]
        clean = False
        self.active_connections += 1
        try:
            ureader, uwriter = await asyncio.open_connection(self.target_host, self.target_port)
            writers.append(uwriter)
            async with asyncio.TaskGroup() as group:
                stalled = lambda: self._is_stalled  # noqa: E731
                group.create_task(_pipe(creader, uwriter, stalled))
                group.create_task(_pipe(ureader, cwriter, stalled))
            clean = True
        except* OSError:
            pass  # target unreachable or a peer reset: drop both sides
        finally:
            self.active_connections -= 1
            await self._close_all(writers, abort=not clean)

    @staticmethod
    async def _close_all(writers: list[asyncio.StreamWriter], *, abort: bool) -> None:
        """Close (flushing) or abort ``writers`` and wait until their sockets are closed."""
        for writer in writers:
            if abort:
                writer.transport.abort()
            else:
                writer.close()
        try:
            for writer in writers:
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        except asyncio.CancelledError:
            for writer in writers:
                writer.transport.abort()
            raise
