"""Slow and greedy clients: half-sent headers and bodies are cut off after the client
timeout (408 in OpenAI's shape, then closed), and open connections are capped (503)."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import orjson

from lectr.orgs import IssuedKey
from proxy.connections import ProxyServer
from tests.proxy.conftest import RunningProxy, StartProxy, chat, lectr_headers
from tests.support import raw_http

TIMEOUT_S = 1.0
CHAT = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})


def server(proxy: RunningProxy) -> ProxyServer:
    assert isinstance(proxy.runner.server, ProxyServer)
    return proxy.runner.server


def half_headers() -> bytes:
    return b"POST /v1/chat/completions HTTP/1.1\r\nHost: lectr\r\nX-Lectr-"


def half_body(org: IssuedKey) -> bytes:
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: lectr\r\n"
        f"X-Lectr-Key: {org.key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(CHAT)}\r\n\r\n"
    )
    return head.encode() + CHAT[: len(CHAT) // 2]


async def _stall(url: str, data: bytes) -> tuple[float, bytes]:
    """Send ``data`` and nothing more: when the proxy closes, and what it answered."""
    reader, writer = await raw_http.connect(url)
    writer.write(data)
    try:
        answer = await raw_http.read_until_closed(reader, TIMEOUT_S + 5)
        return asyncio.get_running_loop().time(), answer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def assert_timeout_answer(answer: bytes) -> None:
    [response] = raw_http.parse(answer)
    assert response.status == 408
    assert response.headers["content-type"] == "application/json"
    assert response.headers["connection"] == "close"
    error = orjson.loads(response.body)["error"]
    assert (error["code"], error["type"]) == ("request_timeout", "invalid_request_error")


async def test_half_sent_headers_and_bodies_are_answered_408_and_closed(
    start_proxy: StartProxy, org: IssuedKey
) -> None:
    proxy = await start_proxy(client_timeout_s=TIMEOUT_S)
    loop = asyncio.get_running_loop()
    started = loop.time()
    stalls = [
        *(_stall(proxy.url, half_headers()) for _ in range(100)),
        *(_stall(proxy.url, half_body(org)) for _ in range(100)),
    ]
    results = await asyncio.gather(*stalls)
    closed_after = max(at for at, _ in results) - started
    assert TIMEOUT_S <= closed_after < TIMEOUT_S + 3, closed_after
    for _, answer in results:
        assert_timeout_answer(answer)
    # Requests cut off mid-body got as far as their org: each is recorded as a 408.
    events = await proxy.events(100)
    assert len(events) == 100
    assert {(e.status_code, e.error_category) for e in events} == {(408, "request_timeout")}
    await asyncio.sleep(0.1)
    assert server(proxy).open_connections == 0


async def test_a_connection_that_sends_nothing_is_closed(start_proxy: StartProxy) -> None:
    proxy = await start_proxy(client_timeout_s=TIMEOUT_S)
    _, answer = await _stall(proxy.url, b"")
    assert_timeout_answer(answer)


async def test_slow_but_steady_bodies_and_idle_keep_alive_are_left_alone(
    start_proxy: StartProxy, org: IssuedKey
) -> None:
    proxy = await start_proxy(client_timeout_s=TIMEOUT_S)
    reader, writer = await raw_http.connect(proxy.url)
    request = half_body(org)
    rest = CHAT[len(CHAT) // 2 :]
    writer.write(request)
    for i in range(0, len(rest), len(rest) // 3 + 1):  # each pause shorter than the timeout
        await asyncio.sleep(TIMEOUT_S * 0.6)
        writer.write(rest[i : i + len(rest) // 3 + 1])
    [response] = raw_http.parse(await raw_http.read_answer(reader))
    assert response.status == 200  # the body took 1.8 s in all, never pausing 1 s
    await asyncio.sleep(TIMEOUT_S * 1.5)  # idle between requests: keep-alive, not a stall
    writer.write(half_body(org) + rest)
    [response] = raw_http.parse(await raw_http.read_answer(reader))
    assert response.status == 200
    writer.close()


async def test_connections_over_the_cap_are_answered_503_and_closed(
    start_proxy: StartProxy, org: IssuedKey
) -> None:
    proxy = await start_proxy(max_connections=3)
    held = [await raw_http.connect(proxy.url) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert server(proxy).open_connections == 3
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.url}/v1/models", headers=lectr_headers(org)) as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "1"
            assert response.headers["Connection"] == "close"
            error = (await response.json())["error"]
            assert (error["code"], error["type"]) == ("too_many_connections", "api_error")
        async with session.get(f"{proxy.url}/health") as response:
            assert response.status == 200  # a health check still gets its answer
            assert response.headers["Connection"] == "close"
    for _, writer in held:
        writer.close()
    await asyncio.sleep(0.1)
    assert server(proxy).open_connections == 0
    assert (await chat(proxy, org, "gpt-4o")).status == 200


async def test_idle_keep_alive_connections_are_closed_after_the_keepalive_time(
    start_proxy: StartProxy, org: IssuedKey
) -> None:
    proxy = await start_proxy(client_timeout_s=5.0, keepalive_s=0.5)
    reader, writer = await raw_http.connect(proxy.url)
    writer.write(half_body(org) + CHAT[len(CHAT) // 2 :])
    [response] = raw_http.parse(await raw_http.read_answer(reader))
    assert response.status == 200
    started = asyncio.get_running_loop().time()
    assert await raw_http.read_until_closed(reader, 5.0) == b""  # closed, nothing said
    assert asyncio.get_running_loop().time() - started < 2.0
    writer.close()
    await asyncio.sleep(0.05)
    assert server(proxy).open_connections == 0


async def test_a_body_the_parser_cannot_read_is_recorded_as_a_client_error(
    proxy: RunningProxy, org: IssuedKey
) -> None:
    reader, writer = await raw_http.connect(proxy.url)
    body = b"this is not gzip " * 4
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: lectr\r\n"
        + f"X-Lectr-Key: {org.key}\r\n".encode()
        + b"Content-Type: application/json\r\nContent-Encoding: gzip\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    [response] = raw_http.parse(await raw_http.read_until_closed(reader, 5.0))
    writer.close()
    assert response.status == 400
    assert orjson.loads(response.body)["error"]["code"] == "invalid_request"
    [event] = await proxy.events(1)
    assert (event.status_code, event.error_category, event.error_source) == (
        400,
        "invalid_request",
        "client",
    )
