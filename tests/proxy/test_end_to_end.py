"""Requests through the proxy land in Postgres through the consumer: every stored field.

The proxy runs in this process in front of simulated providers; the consumer
(``consumers.main.serve``, as ``lectr consumer --drain`` runs it) reads the proxy's
ingest queue until it is empty.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import anthropic
import asyncpg
import openai
import tiktoken

from consumers.main import serve
from consumers.settings import ConsumerSettings
from consumers.tokeniser import count_prompt, encoding_name
from lectr.orgs import IssuedKey
from tests.proxy.conftest import PROVIDER_KEY, RunningProxy, add_rule
from tests.support.providers import STREAM_WORDS, FakeProviders

PROMPT = "PLANTED-E2E-PROMPT: our launch date is the ninth"
MESSAGES = [{"role": "user", "content": PROMPT}]
FAST = ConsumerSettings(batch_size=10, flush_interval_s=0.1, retry_backoff_max_s=0.2)


async def store_everything(proxy: RunningProxy, count: int) -> None:
    """Wait until the proxy has published ``count`` events, then drain them to Postgres."""
    publisher = proxy.state.publisher
    assert publisher is not None
    deadline = asyncio.get_running_loop().time() + 10
    while publisher.published < count:
        assert asyncio.get_running_loop().time() < deadline, "events were not published"
        await asyncio.sleep(0.02)
    assert await asyncio.wait_for(serve(proxy.state.settings, FAST, drain=True), 60) == 0


async def price(db: asyncpg.Connection, provider: str, model: str) -> asyncpg.Record:
    return await db.fetchrow(
        "SELECT input_per_mtok, output_per_mtok, cached_input_per_mtok FROM model_pricing"
        " WHERE provider = $1 AND model = $2 AND effective_from <= now()"
        " ORDER BY effective_from DESC LIMIT 1",
        provider,
        model,
    )


def expected_cost(row: asyncpg.Record, fresh: int, cached: int, output: int) -> Decimal:
    cached_rate = row["cached_input_per_mtok"] or row["input_per_mtok"]
    micro = fresh * row["input_per_mtok"] + cached * cached_rate + output * row["output_per_mtok"]
    return (micro / Decimal(1_000_000)).quantize(Decimal("0.00000001"))


async def test_every_stored_field_through_proxy_and_consumer(
    db: asyncpg.Connection, org: IssuedKey, fake: FakeProviders, start_proxy
) -> None:
    rule_id = await add_rule(
        db, org, name="cheaper triage", priority=1, match_feature="triage",
        target_model="gpt-4o-mini",
    )  # fmt: skip
    proxy = await start_proxy()
    client = openai.AsyncOpenAI(
        base_url=f"{proxy.url}/v1",
        api_key=PROVIDER_KEY,
        default_headers={
            "X-Lectr-Key": org.key,
            "X-Lectr-Feature": "triage",
            "X-Lectr-Task": "classification",
        },
        max_retries=0,
    )
    await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    streamed = await client.chat.completions.create(
        model="gpt-5-mini", messages=MESSAGES, stream=True,
        extra_headers={"X-Lectr-Feature": "drafts"},
    )  # fmt: skip
    text = "".join([c.choices[0].delta.content or "" async for c in streamed if c.choices])
    await client.close()
    claude = anthropic.AsyncAnthropic(
        base_url=proxy.url, api_key=PROVIDER_KEY, default_headers={"X-Lectr-Key": org.key}
    )
    await claude.messages.create(model="claude-haiku-5-5", max_tokens=50, messages=MESSAGES)
    await claude.close()

    await store_everything(proxy, 3)
    rows = {
        r["actual_model"]: r
        for r in await db.fetch("SELECT * FROM request_logs WHERE org_id = $1", org.org_id)
    }
    assert set(rows) == {"gpt-4o-mini", "gpt-5-mini", "claude-haiku-5-5"}

    ruled = rows["gpt-4o-mini"]
    assert ruled["requested_model"] == "gpt-4o" and ruled["rule_id"] == rule_id
    # The snapshot the provider named as the one that answered, stored beside the target.
    assert ruled["response_model"] == "gpt-4o-mini-2024-07-18"
    assert (ruled["feature"], ruled["task_type"]) == ("triage", "classification")
    assert (ruled["provider"], ruled["endpoint"], ruled["streaming"]) == (
        "openai", "/v1/chat/completions", False,
    )  # fmt: skip
    assert (ruled["status_code"], ruled["error_category"]) == (200, None)
    assert (ruled["input_tokens"], ruled["output_tokens"], ruled["cached_tokens"]) == (11, 7, 3)
    assert ruled["token_source"] == "provider"
    mini_price = await price(db, "openai", "gpt-4o-mini")
    assert ruled["cost_usd"] == expected_cost(mini_price, fresh=8, cached=3, output=7)
    assert 0 < ruled["ttfb_ms"] <= ruled["latency_ms"]
    assert ruled["completed_at"] > ruled["created_at"]
    assert (ruled["api_key_id"], ruled["proxy_instance"]) == (org.key_id, "test-proxy")
    assert not ruled["provider_unknown"]

    # A stream without usage: counted by the consumer exactly as tiktoken counts it.
    stream = rows["gpt-5-mini"]
    assert text == "".join(STREAM_WORDS)
    encoding = tiktoken.get_encoding(encoding_name("gpt-5-mini"))
    assert stream["output_tokens"] == len(encoding.encode_ordinary(text))
    assert stream["input_tokens"] == count_prompt(encoding, MESSAGES)
    assert stream["token_source"] == "tokeniser" and stream["streaming"]
    assert (stream["feature"], stream["rule_id"]) == ("drafts", None)
    assert stream["response_model"] == "gpt-5-mini-2025-08-07"  # from the stream's chunks
    assert stream["cost_usd"] == expected_cost(
        await price(db, "openai", "gpt-5-mini"),
        fresh=stream["input_tokens"],
        cached=0,
        output=stream["output_tokens"],
    )

    message = rows["claude-haiku-5-5"]
    assert (message["provider"], message["endpoint"]) == ("anthropic", "/v1/messages")
    assert message["response_model"] == "claude-haiku-5-5"
    assert (message["input_tokens"], message["output_tokens"]) == (12, 8)
    assert message["cost_usd"] == expected_cost(
        await price(db, "anthropic", "claude-haiku-5-5"), fresh=12, cached=0, output=8
    )

    rollups = await db.fetch(
        "SELECT model, request_count, input_tokens, output_tokens, cost_usd"
        " FROM request_rollups WHERE org_id = $1",
        org.org_id,
    )
    by_model = {r["model"]: r for r in rollups}
    assert by_model["gpt-4o-mini"]["request_count"] == 1
    assert by_model["gpt-4o-mini"]["cost_usd"] == ruled["cost_usd"]
    assert sum(r["request_count"] for r in rollups) == 3

    # The prompt and the completion were never stored anywhere.
    for table in await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"):
        hits = await db.fetchval(
            f'SELECT count(*) FROM "{table["tablename"]}" t WHERE t::text LIKE $1'
            " OR t::text LIKE $2",
            f"%{PROMPT}%",
            "%simulated provider%",
        )
        assert hits == 0, table["tablename"]


async def test_proxy_health_reaches_pipeline_health(
    db: asyncpg.Connection, org: IssuedKey, start_proxy
) -> None:
    instance = f"e2e-{uuid.uuid4().hex[:8]}"
    proxy = await start_proxy(instance=instance, health_interval_s=0.05)
    await asyncio.sleep(0.2)
    await store_everything(proxy, 0)
    row = await db.fetchrow(
        "SELECT * FROM pipeline_health WHERE component = 'proxy' AND instance = $1"
        " ORDER BY recorded_at DESC LIMIT 1",
        instance,
    )
    assert row is not None
    assert (row["events_dropped"], row["publish_failures"]) == (0, 0)
