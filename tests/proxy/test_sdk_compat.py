"""The official SDKs work unchanged through the proxy: only base_url and one header."""

from __future__ import annotations

import asyncio

import anthropic
import openai

from lectr.orgs import IssuedKey
from tests.proxy.conftest import PROVIDER_KEY, RunningProxy
from tests.support.providers import FakeProviders

MESSAGES = [{"role": "user", "content": "Say hello"}]


def openai_client(proxy: RunningProxy, org: IssuedKey) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{proxy.url}/v1",
        api_key=PROVIDER_KEY,
        default_headers={"X-Lectr-Key": org.key, "X-Lectr-Feature": "sdk-test"},
        max_retries=0,
    )


def assert_forwarded_cleanly(fake: FakeProviders, path: str) -> None:
    received = fake.last
    assert received.path == path
    assert received.headers["Authorization"] == f"Bearer {PROVIDER_KEY}"
    assert not any(name.startswith("x-lectr") for name in received.header_names())


async def test_openai_sync_chat_is_byte_identical(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    client = openai_client(proxy, org)
    raw = await asyncio.to_thread(
        client.chat.completions.with_raw_response.create, model="gpt-4o", messages=MESSAGES
    )
    assert raw.content == fake.sent[-1]
    assert raw.parse().choices[0].message.content == "Hello from the simulated provider."
    assert_forwarded_cleanly(fake, "/openai/v1/chat/completions")
    assert fake.last.json() == {"model": "gpt-4o", "messages": MESSAGES}
