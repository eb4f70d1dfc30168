"""Where requests go: providers by model name or header, Azure deployments, rules."""

from __future__ import annotations

import aiohttp
import asyncpg
import orjson
import pytest

from lectr.orgs import IssuedKey
from tests.proxy.conftest import CHAT, PROVIDER_KEY, RunningProxy, add_rule, chat, lectr_headers
from tests.support.providers import FakeProviders


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("gemini-2.5-flash", "/gemini/v1beta/openai/chat/completions"),
        ("llama-3.3-70b-versatile", "/groq/openai/v1/chat/completions"),
        ("openai/gpt-oss-120b", "/groq/openai/v1/chat/completions"),
        ("mistral-small-latest", "/mistral/v1/chat/completions"),
        ("deepseek-chat", "/deepseek/v1/chat/completions"),
        ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "/together/v1/chat/completions"),
        ("grok-4", "/xai/v1/chat/completions"),
        ("gpt-5-mini", "/openai/v1/chat/completions"),
    ],
)
async def test_model_name_picks_the_provider(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders, model: str, path: str
) -> None:
    response = await chat(proxy, org, model)
    assert response.status == 200
    assert fake.last.path == path
    assert fake.last.headers["Authorization"] == f"Bearer {PROVIDER_KEY}"
    assert fake.last.json()["model"] == model


async def test_provider_header_overrides_detection(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    response = await chat(proxy, org, "gpt-4o", **{"X-Lectr-Provider": "Groq"})
    assert response.status == 200
    assert fake.last.path == "/groq/openai/v1/chat/completions"
    [event] = await proxy.events(1)
    assert event.provider == "groq" and not event.provider_unknown


async def test_unknown_model_goes_to_the_default_provider(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    assert (await chat(proxy, org, "my-own-finetune")).status == 200
    assert fake.last.path == "/openai/v1/chat/completions"
    [event] = await proxy.events(1)
    assert (event.provider, event.provider_unknown) == ("openai", True)


async def test_unknown_provider_header_is_a_400(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    """A typo in X-Lectr-Provider must not send the key to another provider."""
    response = await chat(proxy, org, "gpt-4o", **{"X-Lectr-Provider": "opneai"})
    assert response.status == 400
    body = orjson.loads(await response.read())
    assert body["error"]["code"] == "invalid_provider"
    assert "opneai" not in body["error"]["message"]  # no client input echoed
    assert fake.received == []
    [event] = await proxy.events(1)
    assert (event.status_code, event.error_category, event.error_source) == (
        400,
        "invalid_provider",
        "client",
    )


async def add_azure_config(db: asyncpg.Connection, org: IssuedKey, endpoint: str) -> None:
    await db.execute(
        "INSERT INTO provider_configs (org_id, provider, endpoint, api_version, deployments)"
        " VALUES ($1, 'azure', $2, '2024-10-21', $3::jsonb)",
        org.org_id,
        endpoint,
        '{"gpt-4o": "prod-gpt4o"}',
    )


async def test_azure_builds_the_deployment_url(
    db: asyncpg.Connection, org: IssuedKey, fake: FakeProviders, start_proxy
) -> None:
    await add_azure_config(db, org, f"{fake.url}/azure/")
    proxy = await start_proxy()
    response = await chat(proxy, org, "gpt-4o", **{"X-Lectr-Provider": "azure"})
    assert response.status == 200
    received = fake.last
    assert received.path == "/azure/openai/deployments/prod-gpt4o/chat/completions"
    assert received.query == {"api-version": "2024-10-21"}
    assert received.headers["api-key"] == PROVIDER_KEY
    assert "authorization" not in received.header_names()

    # A model without a deployment entry uses its own name as the deployment.
    assert (await chat(proxy, org, "gpt-4.1", **{"X-Lectr-Provider": "azure"})).status == 200
    assert fake.last.path == "/azure/openai/deployments/gpt-4.1/chat/completions"


async def test_azure_without_config_is_a_clear_400(proxy: RunningProxy, org: IssuedKey) -> None:
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{proxy.url}/v1/chat/completions",
            json={"model": "gpt-4o", **CHAT},
            headers=lectr_headers(org, **{"X-Lectr-Provider": "azure"}),
        )
        body = await response.json()
    assert response.status == 400
    assert body["error"]["code"] == "azure_config_missing"


async def test_rule_rewrites_model_and_provider(
    db: asyncpg.Connection, org: IssuedKey, fake: FakeProviders, start_proxy
) -> None:
    rule_id = await add_rule(
        db,
        org,
        name="cheap summaries",
        priority=10,
        match_feature="summaries",
        match_model="gpt-4o",
        target_provider="groq",
        target_model="llama-3.1-8b-instant",
    )
    await add_rule(  # lower priority: never reached for this request
        db, org, name="other", priority=20, match_feature="summaries", target_model="gpt-4o-mini"
    )
    proxy = await start_proxy()
    # A rule that changes the provider applies with a key for the target provider.
    headers = {"X-Lectr-Feature": "summaries", "X-Lectr-Provider-Key-groq": "gsk-groq-key"}
    response = await chat(proxy, org, "gpt-4o", **headers)
    assert response.status == 200
    assert fake.last.path == "/groq/openai/v1/chat/completions"
    assert fake.last.json() == {"model": "llama-3.1-8b-instant", **CHAT}
    assert fake.last.headers["Authorization"] == "Bearer gsk-groq-key"
    assert not any(name.startswith("x-lectr") for name in fake.last.header_names())

    # Another feature: no rule matches, nothing changes.
    assert (await chat(proxy, org, "gpt-4o", **{"X-Lectr-Feature": "chat"})).status == 200
    assert fake.last.path == "/openai/v1/chat/completions"
    assert fake.last.json()["model"] == "gpt-4o"

    events = sorted(await proxy.events(2), key=lambda e: e.created_at)
    assert (events[0].requested_model, events[0].actual_model) == ("gpt-4o", "llama-3.1-8b-instant")
    assert (events[0].provider, events[0].rule_id) == ("groq", rule_id)
    assert (events[1].actual_model, events[1].rule_id) == ("gpt-4o", None)


async def test_disabled_rule_changes_nothing(
    db: asyncpg.Connection, org: IssuedKey, fake: FakeProviders, start_proxy
) -> None:
    await add_rule(db, org, name="off", priority=1, enabled=False, target_model="gpt-4o-mini")
    proxy = await start_proxy()
    assert (await chat(proxy, org, "gpt-4o")).status == 200
    assert fake.last.json()["model"] == "gpt-4o"


async def test_rule_matching_task_and_provider(
    db: asyncpg.Connection, org: IssuedKey, fake: FakeProviders, start_proxy
) -> None:
    await add_rule(
        db,
        org,
        name="classify cheaply",
        priority=1,
        match_task="classification",
        match_provider="anthropic",
        target_model="claude-haiku-5-5",
    )
    proxy = await start_proxy()
    await chat(proxy, org, "claude-opus-5", **{"X-Lectr-Task": "classification"})
    assert fake.last.json()["model"] == "claude-haiku-5-5"
    await chat(proxy, org, "claude-opus-5", **{"X-Lectr-Task": "generation"})
    assert fake.last.json()["model"] == "claude-opus-5"
    await chat(proxy, org, "gpt-4o", **{"X-Lectr-Task": "classification"})
    assert fake.last.json()["model"] == "gpt-4o"


async def test_an_overlong_model_name_is_forwarded_and_recorded_cut(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    model = "gpt-" + "x" * 300
    assert (await chat(proxy, org, model)).status == 200
    assert fake.last.json()["model"] == model
    [event] = await proxy.events(1)
    assert event.requested_model == model[:200] and event.actual_model == model[:200]
