"""Streams: bytes relayed as they come, usage or text for counting, and broken ends."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
from aiohttp import web

from lectr.orgs import IssuedKey
from tests.proxy.conftest import RunningProxy, lectr_headers
from tests.support.providers import STREAM_WORDS, FakeProviders, Received, openai_chunk, sse

MESSAGES = [{"role": "user", "content": "Tell me a secret: PLANTED-PROMPT-7f3a"}]
STREAM = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}


async def test_chunks_reach_the_client_before_the_stream_ends(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    release = asyncio.Event()

    async def held_stream(request: web.Request, received: Received) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(openai_chunk("gpt-4o", "first")))
        await release.wait()  # the rest comes only once the client has seen the first chunk
        await response.write(sse(openai_chunk("gpt-4o", "second")) + b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    fake.respond_with(held_stream)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{proxy.url}/v1/chat/completions", json=STREAM, headers=lectr_headers(org)
        ) as response,
    ):
        first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)
        assert b"first" in first
        release.set()
        rest = await response.read()
    assert b"second" in rest and rest.endswith(b"data: [DONE]\n\n")
    [event] = await proxy.events(1)
    assert event.streaming and event.status_code == 200 and event.error_category is None
    assert event.ttfb_ms is not None and event.ttfb_ms < event.latency_ms


async def test_stream_without_usage_carries_text_for_counting(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{proxy.url}/v1/chat/completions", json=STREAM, headers=lectr_headers(org)
        ) as response,
    ):
        await response.read()
    [event] = await proxy.events(1)
    assert event.input_tokens is None and event.token_source is None
    assert event.text is not None
    assert event.text.completion == "".join(STREAM_WORDS)
    assert event.text.prompt == MESSAGES
    assert not event.text.truncated
    assert event.sanitised().text is None


async def test_streamed_text_is_capped(start_proxy, org: IssuedKey, fake: FakeProviders) -> None:
    proxy = await start_proxy(stream_text_cap=10)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{proxy.url}/v1/chat/completions", json=STREAM, headers=lectr_headers(org)
        ) as response,
    ):
        body = await response.read()
    assert body == fake.sent[-1]  # the client still gets everything
    [event] = await proxy.events(1)
    assert event.text is not None
    assert event.text.completion == "".join(STREAM_WORDS)[:10] and event.text.truncated


async def test_client_disconnect_cancels_the_upstream_request(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    upstream_cancelled = asyncio.Event()

    async def endless(request: web.Request, received: Received) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            while True:
                await response.write(sse(openai_chunk("gpt-4o", "word")))
                await asyncio.sleep(0.05)
        except (asyncio.CancelledError, ConnectionResetError):
            upstream_cancelled.set()
            raise

    fake.respond_with(endless)
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{proxy.url}/v1/chat/completions", json=STREAM, headers=lectr_headers(org)
        )
        await response.content.readuntil(b"\n\n")
        response.close()  # the client goes away mid-stream
    await asyncio.wait_for(upstream_cancelled.wait(), 5)
    [event] = await proxy.events(1)
    assert (event.error_category, event.error_source) == ("client_disconnect", "client")
    assert event.status_code == 200 and event.streaming
    # What was relayed before the client left is counted.
    assert event.text is not None and event.text.prompt == MESSAGES
    completion = event.text.completion
    assert completion and completion == "word" * (len(completion) // 4)


async def test_client_leaving_after_the_last_event_is_a_complete_stream(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    """SDKs close the connection once they have the last event; the provider's end of
    stream may reach the proxy only after that: the stream is still complete."""

    async def slow_end(request: web.Request, received: Received) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for word in STREAM_WORDS:
            await response.write(sse(openai_chunk("gpt-4o", word)))
        await response.write(b"data: [DONE]\n\n")
        await asyncio.sleep(0.2)  # the client has gone by now
        await response.write_eof()
        return response

    fake.respond_with(slow_end)
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{proxy.url}/v1/chat/completions", json=STREAM, headers=lectr_headers(org)
        )
        while not (await response.content.readuntil(b"\n\n")).startswith(b"data: [DONE]"):
            pass
        response.close()
    [event] = await proxy.events(1)
    assert event.status_code == 200 and event.error_category is None
    assert event.text is not None and event.text.completion == "".join(STREAM_WORDS)


async def test_upstream_break_mid_stream_ends_the_client_stream_with_an_error(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    async def breaks(request: web.Request, received: Received) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(openai_chunk("gpt-4o", "partial")))
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.abort()  # the provider's connection drops mid-stream
        return response

    fake.respond_with(breaks)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{proxy.url}/v1/chat/completions", json=STREAM, headers=lectr_headers(org)
        ) as response,
    ):
        first = await response.content.readuntil(b"\n\n")
        assert b"partial" in first
        try:
            await response.read()
            raise AssertionError("the stream should end with an error")
        except aiohttp.ClientPayloadError:
            pass
    [event] = await proxy.events(1)
    assert event.error_category == "upstream_disconnect"
    assert event.error_source == "provider"


async def test_non_streamed_response_without_usage_carries_text(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    completion = {
        "id": "x",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Plain answer"}}],
    }

    async def no_usage(request: web.Request, received: Received) -> web.StreamResponse:
        return web.json_response(completion, dumps=lambda d: orjson.dumps(d).decode())

    fake.respond_with(no_usage)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{proxy.url}/v1/chat/completions",
            json={"model": "gpt-4o", "messages": MESSAGES},
            headers=lectr_headers(org),
        ) as response,
    ):
        assert await response.json() == completion
    [event] = await proxy.events(1)
    assert event.text is not None and event.text.completion == "Plain answer"
    assert event.token_source is None
