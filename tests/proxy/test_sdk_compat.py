"""The official SDKs work unchanged through the proxy: only base_url and one header.

Each response is compared byte for byte with what the simulated provider sent, and the
provider's side is checked: the right path, the key in its own header style, the body
the SDK sent, and no X-Lectr-* header.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest

from lectr.orgs import IssuedKey
from tests.proxy.conftest import PROVIDER_KEY, RunningProxy
from tests.support.providers import FakeProviders

MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def closing() -> Iterator[Callable[[Any], Any]]:
    """Registers a synchronous SDK client to be closed after the test (its pooled
    connections would otherwise be left to the garbage collector)."""
    clients: list[Any] = []

    def register(client: Any) -> Any:
        clients.append(client)
        return client

    yield register
    for client in clients:
        client.close()


def openai_headers(org: IssuedKey) -> dict[str, str]:
    return {"X-Lectr-Key": org.key, "X-Lectr-Feature": "sdk-test", "X-Lectr-Task": "generation"}


def sync_openai(proxy: RunningProxy, org: IssuedKey) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{proxy.url}/v1",
        api_key=PROVIDER_KEY,
        default_headers=openai_headers(org),
        max_retries=0,
    )


def async_openai(proxy: RunningProxy, org: IssuedKey) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{proxy.url}/v1",
        api_key=PROVIDER_KEY,
        default_headers=openai_headers(org),
        max_retries=0,
    )


def assert_forwarded_cleanly(fake: FakeProviders, path: str, auth: str = "bearer") -> None:
    received = fake.last
    assert received.path == path
    if auth == "bearer":
        assert received.headers["Authorization"] == f"Bearer {PROVIDER_KEY}"
    else:
        assert received.headers["x-api-key"] == PROVIDER_KEY
        assert "authorization" not in received.header_names()
    assert not any(name.startswith("x-lectr") for name in received.header_names())


async def test_openai_sync_chat_is_byte_identical(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders, closing: Callable[[Any], Any]
) -> None:
    client = closing(sync_openai(proxy, org))
    raw = await asyncio.to_thread(
        client.chat.completions.with_raw_response.create, model="gpt-4o", messages=MESSAGES
    )
    assert raw.content == fake.sent[-1]
    assert raw.headers["x-request-id"] == f"req_{len(fake.sent)}"
    assert raw.parse().choices[0].message.content == "Hello from the simulated provider."
    assert_forwarded_cleanly(fake, "/openai/v1/chat/completions")
    assert fake.last.json() == {"model": "gpt-4o", "messages": MESSAGES}

    [event] = await proxy.events(1)
    assert (event.org_id, event.api_key_id) == (org.org_id, org.key_id)
    assert (event.provider, event.requested_model, event.actual_model) == (
        "openai",
        "gpt-4o",
        "gpt-4o",
    )
    assert (event.feature, event.task_type, event.endpoint) == (
        "sdk-test",
        "generation",
        "/v1/chat/completions",
    )
    assert (event.input_tokens, event.output_tokens, event.cached_tokens) == (11, 7, 3)
    assert event.token_source == "provider" and event.text is None
    assert event.status_code == 200 and not event.streaming
    assert event.ttfb_ms is not None and 0 < event.ttfb_ms <= event.latency_ms


async def test_openai_sync_stream_is_byte_identical(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders, closing: Callable[[Any], Any]
) -> None:
    client = closing(sync_openai(proxy, org))

    def stream() -> tuple[bytes, list[str]]:
        with client.chat.completions.with_streaming_response.create(
            model="gpt-4o", messages=MESSAGES, stream=True
        ) as response:
            raw = b"".join(response.iter_bytes())
        words = [
            chunk.choices[0].delta.content or ""
            for chunk in client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True
            )
            if chunk.choices
        ]
        return raw, words

    raw, words = await asyncio.to_thread(stream)
    assert raw == fake.sent[-2]
    assert "".join(words) == "Hello from the simulated provider."
    assert_forwarded_cleanly(fake, "/openai/v1/chat/completions")
    assert fake.last.json()["stream"] is True


async def test_openai_async_chat_and_stream(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    client = async_openai(proxy, org)
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    assert raw.content == fake.sent[-1]

    async with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        streamed = b"".join([chunk async for chunk in response.iter_bytes()])
    assert streamed == fake.sent[-1]
    assert_forwarded_cleanly(fake, "/openai/v1/chat/completions")

    events = sorted(await proxy.events(2), key=lambda e: e.created_at)
    assert [e.streaming for e in events] == [False, True]
    stream_event = events[1]
    assert (stream_event.input_tokens, stream_event.output_tokens) == (11, 7)
    assert stream_event.token_source == "provider" and stream_event.text is None
    await client.close()


async def test_openai_embeddings_responses_and_models(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    client = async_openai(proxy, org)
    embedding = await client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="hello"
    )
    assert embedding.content == fake.sent[-1]
    assert_forwarded_cleanly(fake, "/openai/v1/embeddings")

    response = await client.responses.with_raw_response.create(model="gpt-5", input="hello")
    assert response.content == fake.sent[-1]
    assert response.parse().output_text == "Hello."
    assert_forwarded_cleanly(fake, "/openai/v1/responses")

    models = await client.models.list()
    assert [m.id for m in models.data] == ["gpt-4o"]
    assert fake.last.method == "GET" and fake.last.path == "/openai/v1/models"

    events = {e.endpoint: e for e in await proxy.events(3)}
    assert events["/v1/embeddings"].input_tokens == 5
    assert events["/v1/embeddings"].output_tokens == 0
    assert (events["/v1/responses"].input_tokens, events["/v1/responses"].output_tokens) == (9, 2)
    assert events["/v1/models"].requested_model is None
    await client.close()


def anthropic_client(proxy: RunningProxy, org: IssuedKey) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=proxy.url,
        api_key=PROVIDER_KEY,
        default_headers={"X-Lectr-Key": org.key},
        max_retries=0,
    )


async def test_anthropic_sdk_messages_and_stream(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    client = anthropic_client(proxy, org)
    raw = await client.messages.with_raw_response.create(
        model="claude-sonnet-5-5", max_tokens=100, messages=MESSAGES
    )
    assert raw.http_response.content == fake.sent[-1]
    assert (await raw.parse()).content[0].text == "Hello from the simulated provider."
    assert_forwarded_cleanly(fake, "/anthropic/v1/messages", auth="x-api-key")
    # The SDK's own API version is kept; Lectr adds one only when none was sent.
    assert fake.last.headers["anthropic-version"] == raw.http_request.headers["anthropic-version"]
    assert fake.last.json()["model"] == "claude-sonnet-5-5"

    async with client.messages.stream(
        model="claude-sonnet-5-5", max_tokens=100, messages=MESSAGES
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
    assert text == "Hello from the simulated provider."

    async with client.messages.with_streaming_response.create(
        model="claude-sonnet-5-5", max_tokens=100, messages=MESSAGES, stream=True
    ) as response:
        streamed = b"".join([chunk async for chunk in response.iter_bytes()])
    assert streamed == fake.sent[-1]
    assert_forwarded_cleanly(fake, "/anthropic/v1/messages", auth="x-api-key")

    events = sorted(await proxy.events(3), key=lambda e: e.created_at)
    assert [e.provider for e in events] == ["anthropic"] * 3
    assert (events[0].input_tokens, events[0].output_tokens) == (12, 8)
    # Streams: input from message_start (13 fresh + 4 cache reads), output from message_delta.
    assert (events[2].input_tokens, events[2].output_tokens, events[2].cached_tokens) == (
        17,
        9,
        4,
    )
    assert events[2].streaming and events[2].token_source == "provider"
    await client.close()


async def test_openai_sdk_against_claude_uses_anthropic_compatible_endpoint(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    client = async_openai(proxy, org)
    raw = await client.chat.completions.with_raw_response.create(
        model="claude-haiku-5-5", messages=MESSAGES
    )
    assert raw.content == fake.sent[-1]
    assert_forwarded_cleanly(fake, "/anthropic/v1/chat/completions", auth="x-api-key")
    assert fake.last.headers["anthropic-version"] == "2023-06-01"
    await client.close()


# A provider that paces its chunks, like the real ones: SDKs close the connection as soon
# as they have the last event, often before the provider's end of stream reaches the proxy.
PACE_S = 0.01


def assert_complete(events: list, count: int) -> None:
    assert len(events) == count
    for event in events:
        assert event.streaming and event.status_code == 200, event
        assert event.error_category is None and event.error_source is None, event
        assert event.token_source == "provider" or event.text is not None, event


async def test_openai_sdk_streams_from_a_paced_provider_are_recorded_complete(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders, closing: Callable[[Any], Any]
) -> None:
    fake.pace_s = PACE_S
    client = closing(sync_openai(proxy, org))

    def streams(count: int) -> None:
        for n in range(count):
            options = {"stream_options": {"include_usage": True}} if n % 2 else {}
            for _ in client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, **options
            ):
                pass

    aclient = async_openai(proxy, org)

    async def astream() -> None:
        async for _ in await aclient.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True
        ):
            pass

    await asyncio.gather(
        *(asyncio.to_thread(streams, 10) for _ in range(5)), *(astream() for _ in range(10))
    )
    assert_complete(await proxy.events(60), 60)
    await aclient.close()


async def test_anthropic_sdk_streams_from_a_paced_provider_are_recorded_complete(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders, closing: Callable[[Any], Any]
) -> None:
    fake.pace_s = PACE_S
    client = closing(
        anthropic.Anthropic(
            base_url=proxy.url,
            api_key=PROVIDER_KEY,
            default_headers={"X-Lectr-Key": org.key},
            max_retries=0,
        )
    )

    def streams(count: int) -> None:
        for _ in range(count):
            with client.messages.stream(
                model="claude-sonnet-5-5", max_tokens=100, messages=MESSAGES
            ) as stream:
                for _ in stream.text_stream:
                    pass
            for _ in client.messages.create(
                model="claude-sonnet-5-5", max_tokens=100, messages=MESSAGES, stream=True
            ):
                pass

    await asyncio.gather(*(asyncio.to_thread(streams, 5) for _ in range(4)))
    events = await proxy.events(40)
    assert_complete(events, 40)
    assert {(e.input_tokens, e.output_tokens) for e in events} == {(17, 9)}
