"""Every event names the model that answered, as the provider's response or stream named it.

Providers answer an alias with a dated snapshot ("gpt-4o-mini" is served by
"gpt-4o-mini-2024-07-18"); the event keeps both what was sent for (``actual_model``) and
what answered (``response_model``), so a silent model change upstream is visible.
"""

from __future__ import annotations

import aiohttp
import anthropic
import asyncpg
import openai
from aiohttp import web

from lectr.orgs import IssuedKey
from proxy.calls import MODEL_MAX
from schema.events import RequestEvent
from tests.proxy.conftest import (
    PROVIDER_KEY,
    RunningProxy,
    StartProxy,
    add_rule,
    chat,
    lectr_headers,
)
from tests.support.providers import (
    FakeProviders,
    Received,
    chat_completion,
    openai_chunk,
    sse,
)

MESSAGES = [{"role": "user", "content": "Say hello"}]


def openai_client(proxy: RunningProxy, org: IssuedKey) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{proxy.url}/v1",
        api_key=PROVIDER_KEY,
        default_headers={"X-Lectr-Key": org.key},
        max_retries=0,
    )


async def events_by_feature(proxy: RunningProxy, count: int) -> dict[str, RequestEvent]:
    events = await proxy.events(count)
    assert len(events) == count
    return {event.feature: event for event in events}


async def test_openai_chat_streamed_or_not_names_the_snapshot(
    proxy: RunningProxy, org: IssuedKey
) -> None:
    client = openai_client(proxy, org)
    completion = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Lectr-Feature": "whole"}
    )
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True,
        extra_headers={"X-Lectr-Feature": "stream"},
    )  # fmt: skip
    chunks = [chunk async for chunk in stream]
    embedding = await client.embeddings.create(
        model="text-embedding-3-small", input="hi", extra_headers={"X-Lectr-Feature": "embed"}
    )
    await client.models.list(extra_headers={"X-Lectr-Feature": "list"})
    await client.close()
    # What the SDK user sees is what the event records.
    assert completion.model == chunks[0].model == "gpt-4o-mini-2024-07-18"

    events = await events_by_feature(proxy, 4)
    for feature in ("whole", "stream"):
        event = events[feature]
        assert (event.requested_model, event.actual_model) == ("gpt-4o-mini", "gpt-4o-mini")
        assert event.response_model == "gpt-4o-mini-2024-07-18"
    assert events["stream"].streaming
    assert events["embed"].response_model == embedding.model == "text-embedding-3-small"
    # A response that names no model (the model list) records none.
    assert events["list"].response_model is None and events["list"].status_code == 200


async def test_anthropic_messages_streamed_or_not_name_the_snapshot(
    proxy: RunningProxy, org: IssuedKey
) -> None:
    client = anthropic.AsyncAnthropic(
        base_url=proxy.url, api_key=PROVIDER_KEY, default_headers={"X-Lectr-Key": org.key},
        max_retries=0,
    )  # fmt: skip
    message = await client.messages.create(
        model="claude-sonnet-4-5", max_tokens=50, messages=MESSAGES,
        extra_headers={"X-Lectr-Feature": "whole"},
    )  # fmt: skip
    async with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=50, messages=MESSAGES,
        extra_headers={"X-Lectr-Feature": "stream"},
    ) as stream:  # fmt: skip
        final = await stream.get_final_message()
    await client.close()
    assert message.model == final.model == "claude-sonnet-4-5-20250929"

    events = await events_by_feature(proxy, 2)
    for feature in ("whole", "stream"):
        event = events[feature]
        assert (event.provider, event.actual_model) == ("anthropic", "claude-sonnet-4-5")
        assert event.response_model == "claude-sonnet-4-5-20250929"
    assert events["stream"].streaming and events["stream"].input_tokens == 17


def gemini_response(text: str) -> dict:
    return {
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1},
        "modelVersion": "gemini-2.5-flash-preview-05-20",
        "responseId": "resp-gemini",
    }


async def test_gemini_native_responses_name_their_model_version(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    async def generate(request: web.Request, received: Received) -> web.Response:
        return fake.json(gemini_response("Hello"))

    async def stream_generate(request: web.Request, received: Received) -> web.StreamResponse:
        return await fake.stream(request, [sse(gemini_response(w)) for w in ("Hel", "lo")])

    fake.respond_with(generate)
    fake.respond_with(stream_generate)
    headers = lectr_headers(org, **{"X-Lectr-Provider": "gemini"})
    async with aiohttp.ClientSession() as session:
        for path, feature in (
            ("models/gemini-2.5-flash:generateContent", "whole"),
            ("models/gemini-2.5-flash:streamGenerateContent?alt=sse", "stream"),
        ):
            async with session.post(
                f"{proxy.url}/v1/{path}",
                json={"contents": [{"parts": [{"text": "hi"}]}]},
                headers={**headers, "X-Lectr-Feature": feature},
            ) as response:
                assert response.status == 200
                await response.read()

    events = await events_by_feature(proxy, 2)
    for feature in ("whole", "stream"):
        assert events[feature].provider == "gemini"
        assert events[feature].response_model == "gemini-2.5-flash-preview-05-20"


async def test_stream_takes_the_first_chunk_that_names_a_model(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    """Azure's first chunk (content filter results) has an empty model."""

    async def azure_like(request: web.Request, received: Received) -> web.StreamResponse:
        first = {**openai_chunk("", None), "choices": [], "prompt_filter_results": []}
        return await fake.stream(
            request,
            [
                sse(first),
                sse(openai_chunk("gpt-4o-2024-11-20", "Hi")),
                sse(openai_chunk("gpt-4o-other", None, finish="stop")),
                b"data: [DONE]\n\n",
            ],
        )

    fake.respond_with(azure_like)
    client = openai_client(proxy, org)
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert [c.choices[0].delta.content async for c in stream if c.choices] == ["Hi", None]
    await client.close()
    [event] = await proxy.events(1)
    assert event.response_model == "gpt-4o-2024-11-20"


async def test_provider_error_records_no_response_model(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    async def overloaded(request: web.Request, received: Received) -> web.Response:
        # Even an error body that names a model is not an answer from that model.
        error = {"error": {"message": "overloaded", "type": "server_error"}, "model": "gpt-4o"}
        return fake.json(error, status=503)

    fake.respond_with(overloaded)
    response = await chat(proxy, org, "gpt-4o")
    assert response.status == 503
    [event] = await proxy.events(1)
    assert (event.status_code, event.error_category) == (503, "server_error")
    assert event.response_model is None


async def test_rule_rewrite_keeps_target_and_answering_model_apart(
    db: asyncpg.Connection, org: IssuedKey, start_proxy: StartProxy
) -> None:
    await add_rule(
        db, org, name="cheaper", priority=1, match_feature="triage", target_model="gpt-4o-mini"
    )
    proxy = await start_proxy()
    response = await chat(proxy, org, "gpt-4o", **{"X-Lectr-Feature": "triage"})
    assert response.status == 200
    [event] = await proxy.events(1)
    assert (event.requested_model, event.actual_model) == ("gpt-4o", "gpt-4o-mini")
    assert event.response_model == "gpt-4o-mini-2024-07-18"


async def test_long_or_unstorable_model_names_are_cut_and_cleaned(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    long_name = "m" * (MODEL_MAX + 100)

    async def long_whole(request: web.Request, received: Received) -> web.Response:
        return fake.json(chat_completion(long_name, 1))

    async def long_stream(request: web.Request, received: Received) -> web.StreamResponse:
        return await fake.stream(request, [sse(openai_chunk(long_name, "x")), b"data: [DONE]\n\n"])

    async def nul_name(request: web.Request, received: Received) -> web.Response:
        return fake.json(chat_completion("gpt\x00-4o", 2))

    for handler in (long_whole, long_stream, nul_name):
        fake.respond_with(handler)
    async with aiohttp.ClientSession() as session:
        for feature, stream in (("whole", False), ("stream", True), ("nul", False)):
            async with session.post(
                f"{proxy.url}/v1/chat/completions",
                json={"model": "gpt-4o", "messages": MESSAGES, "stream": stream},
                headers=lectr_headers(org, **{"X-Lectr-Feature": feature}),
            ) as response:
                await response.read()
    events = await events_by_feature(proxy, 3)
    assert events["whole"].response_model == events["stream"].response_model == "m" * MODEL_MAX
    assert events["nul"].response_model == "gpt\ufffd-4o"
