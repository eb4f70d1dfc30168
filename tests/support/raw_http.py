"""HTTP over a raw socket, for requests no HTTP client would send (malformed, half sent)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

# A step of a raw exchange: bytes to send, or seconds to wait before the next step.
Step = bytes | float


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> object:
        return orjson.loads(self.body)


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return await asyncio.open_connection(parts.hostname, parts.port)


async def exchange(
    url: str, steps: Sequence[Step], *, idle_s: float = 0.2, timeout_s: float = 5.0
) -> bytes:
    """Send ``steps``, then read until the server closes, or until a response is complete
    and nothing more comes for ``idle_s``. Returns every byte the server sent."""
    reader, writer = await connect(url)
    try:
        for step in steps:
            if isinstance(step, float):
                await asyncio.sleep(step)
            else:
                writer.write(step)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
        return await read_answer(reader, idle_s=idle_s, timeout_s=timeout_s)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def read_answer(
    reader: asyncio.StreamReader, *, idle_s: float = 0.2, timeout_s: float = 5.0
) -> bytes:
    received = b""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"no complete answer in {timeout_s} s: {received[:200]!r}"
        wait = min(left, idle_s) if complete(received) else left
        try:
            data = await asyncio.wait_for(reader.read(65536), wait)
        except TimeoutError:
            return received
        except ConnectionError:
            return received
        if not data:
            return received
        received += data


async def read_until_closed(reader: asyncio.StreamReader, timeout_s: float) -> bytes:
    """Everything the server sends until it closes the connection (fails on timeout)."""
    received = b""
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                data = await reader.read(65536)
            except ConnectionError:
                return received
            if not data:
                return received
            received += data


def complete(raw: bytes) -> bool:
    try:
        return bool(parse(raw))
    except ValueError:
        return False


def parse(raw: bytes) -> list[RawResponse]:
    """The responses in ``raw`` (each with a Content-Length); ValueError if one is cut."""
    responses = []
    while raw:
        head, separator, rest = raw.partition(b"\r\n\r\n")
        if not separator:
            raise ValueError(f"incomplete response head: {raw[:200]!r}")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if len(rest) < length:
            raise ValueError(f"incomplete response body: {raw[:200]!r}")
        responses.append(RawResponse(status, headers, rest[:length]))
        raw = rest[length:]
    return responses
