"""Every error Lectr raises, provoked, in the documented shape; provider errors untouched."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import asyncpg
import orjson
from aiohttp import web

from lectr.orgs import IssuedKey
from tests.proxy.conftest import RunningProxy, lectr_headers
from tests.support.providers import FakeProviders, Received, slow_stream

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


async def post(
    proxy: RunningProxy,
    path: str = "/v1/chat/completions",
    *,
    headers: dict[str, str],
    data: bytes | None = None,
) -> tuple[int, dict, dict[str, str]]:
    body = orjson.dumps(CHAT) if data is None else data
    headers = {"Content-Type": "application/json", **headers}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{proxy.url}{path}", data=body, headers=headers) as response,
    ):
        json = await response.json() if response.content_type == "application/json" else {}
        return response.status, json, dict(response.headers)


def assert_lectr_error(status: int, body: dict, expected: int, code: str) -> None:
    assert status == expected
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "code"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]


async def test_missing_and_invalid_keys_never_reach_the_provider(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    status, body, _ = await post(proxy, headers={"Authorization": "Bearer sk-x"})
    assert_lectr_error(status, body, 401, "missing_lectr_key")
    for bad in ("lc_key_" + "x" * 43, "not-a-key", org.key + "x"):
        status, body, _ = await post(proxy, headers={"X-Lectr-Key": bad})
        assert_lectr_error(status, body, 401, "invalid_lectr_key")
    assert fake.received == []


async def test_disabled_org_is_refused(
    db: asyncpg.Connection, org: IssuedKey, fake: FakeProviders, start_proxy
) -> None:
    await db.execute("UPDATE organizations SET status = 'disabled' WHERE id = $1", org.org_id)
    proxy = await start_proxy()
    status, body, _ = await post(proxy, headers=lectr_headers(org))
    assert_lectr_error(status, body, 401, "org_disabled")
    assert fake.received == []


async def test_revoked_key_is_refused(db: asyncpg.Connection, org: IssuedKey, start_proxy) -> None:
    await db.execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1", org.key_id)
    proxy = await start_proxy()
    status, body, _ = await post(proxy, headers=lectr_headers(org))
    assert_lectr_error(status, body, 401, "invalid_lectr_key")


async def test_malformed_json_is_a_400_where_a_model_is_needed(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    for data in (b'{"model": "gpt-4o", ', b"[1, 2]"):
        status, body, _ = await post(proxy, headers=lectr_headers(org), data=data)
        assert_lectr_error(status, body, 400, "invalid_request")
    assert fake.received == []
    # A path that needs no model forwards any body as it is; the provider answers.
    status, _, _ = await post(proxy, "/v1/files", headers=lectr_headers(org), data=b"{oops")
    assert status == 404
    assert fake.last.path == "/openai/v1/files" and fake.last.body == b"{oops"
    events = await proxy.events(3)
    assert sorted((e.status_code, e.error_source) for e in events) == [
        (400, "client"),
        (400, "client"),
        (404, "provider"),
    ]


async def test_overlong_feature_tag_is_a_400(proxy: RunningProxy, org: IssuedKey) -> None:
    headers = lectr_headers(org, **{"X-Lectr-Feature": "f" * 101})
    status, body, _ = await post(proxy, headers=headers)
    assert_lectr_error(status, body, 400, "invalid_request")
    assert "X-Lectr-Feature" in body["error"]["message"]
    [event] = await proxy.events(1)  # still recorded, with what fits the column
    assert event.feature == "f" * 100 and event.status_code == 400


async def test_body_over_the_limit_is_a_413(
    start_proxy, org: IssuedKey, fake: FakeProviders
) -> None:
    proxy = await start_proxy(max_body_bytes=1000)
    big = orjson.dumps({**CHAT, "messages": [{"role": "user", "content": "x" * 2000}]})
    status, body, _ = await post(proxy, headers=lectr_headers(org), data=big)
    assert_lectr_error(status, body, 413, "payload_too_large")

    async def chunks():  # no Content-Length: the limit applies while reading
        for _ in range(4):
            yield b"x" * 500

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{proxy.url}/v1/chat/completions", data=chunks(), headers=lectr_headers(org)
        ) as response,
    ):
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "payload_too_large"
    assert fake.received == []


async def test_requests_per_minute_limit(
    db: asyncpg.Connection, org: IssuedKey, fake: FakeProviders, start_proxy
) -> None:
    await db.execute("UPDATE organizations SET rate_limit_rpm = 2 WHERE id = $1", org.org_id)
    proxy = await start_proxy()
    for _ in range(2):
        status, _, _ = await post(proxy, headers=lectr_headers(org))
        assert status == 200
    status, body, headers = await post(proxy, headers=lectr_headers(org))
    assert_lectr_error(status, body, 429, "rate_limit_exceeded")
    assert 1 <= int(headers["Retry-After"]) <= 30
    assert len(fake.received) == 2


async def test_concurrent_streams_limit(
    db: asyncpg.Connection, org: IssuedKey, fake: FakeProviders, start_proxy
) -> None:
    await db.execute(
        "UPDATE organizations SET max_concurrent_streams = 1 WHERE id = $1", org.org_id
    )
    proxy = await start_proxy()
    fake.respond_with(slow_stream)
    stream_body = orjson.dumps({**CHAT, "stream": True})
    async with aiohttp.ClientSession() as session:
        first = await session.post(
            f"{proxy.url}/v1/chat/completions",
            data=stream_body,
            headers=lectr_headers(org, **{"Content-Type": "application/json"}),
        )
        assert first.status == 200
        status, body, headers = await post(proxy, headers=lectr_headers(org), data=stream_body)
        assert_lectr_error(status, body, 429, "concurrent_streams_exceeded")
        assert headers["Retry-After"] == "1"
        # Requests that do not stream are not limited by it.
        assert (await post(proxy, headers=lectr_headers(org)))[0] == 200
        await first.read()
        first.release()
    # Once the stream has ended, another may start.
    assert (await post(proxy, headers=lectr_headers(org), data=stream_body))[0] == 200


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_unreachable_provider_is_a_502(start_proxy, org: IssuedKey) -> None:
    proxy = await start_proxy(base_urls={"openai": f"http://127.0.0.1:{closed_port()}/v1"})
    status, body, _ = await post(proxy, headers=lectr_headers(org))
    assert_lectr_error(status, body, 502, "provider_unreachable")
    [event] = await proxy.events(1)
    assert (event.status_code, event.error_category, event.error_source) == (
        502,
        "provider_unreachable",
        "network",
    )


async def test_slow_provider_is_a_504(start_proxy, org: IssuedKey, fake: FakeProviders) -> None:
    async def too_slow(request: web.Request, received: Received) -> web.StreamResponse:
        await asyncio.sleep(1.0)
        return web.json_response({})

    fake.respond_with(too_slow)
    proxy = await start_proxy(read_timeout_s=0.2)
    status, body, _ = await post(proxy, headers=lectr_headers(org))
    assert_lectr_error(status, body, 504, "provider_timeout")


async def test_provider_errors_pass_through_unchanged(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    error = b'{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit"}}'

    async def limited(request: web.Request, received: Received) -> web.StreamResponse:
        return web.Response(
            body=error,
            status=429,
            headers={"Content-Type": "application/json", "retry-after": "7", "x-ratelimit": "0"},
        )

    fake.respond_with(limited)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{proxy.url}/v1/chat/completions", json=CHAT, headers=lectr_headers(org)
        ) as response,
    ):
        assert response.status == 429
        assert await response.read() == error
        assert response.headers["retry-after"] == "7"
        assert response.headers["x-ratelimit"] == "0"
    [event] = await proxy.events(1)
    assert (event.status_code, event.error_category, event.error_source) == (
        429,
        "rate_limited",
        "provider",
    )


async def test_a_body_cut_off_mid_way_is_a_502(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    async def cut_off(request: web.Request, received: Received) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "application/json", "Content-Length": "1000"}
        )
        await response.prepare(request)
        await response.write(b'{"id": "partial"')
        assert request.transport is not None
        request.transport.abort()
        return response

    fake.respond_with(cut_off)
    status, body, _ = await post(proxy, headers=lectr_headers(org))
    assert_lectr_error(status, body, 502, "provider_unreachable")
