"""The request edge, sent exactly the bad input found in issue 8, through the real proxy.

Header bytes that are not UTF-8, NUL in a model or a path, paths and models that try to
leave the provider's base, queries that try to drop or repeat ``api-version``, Lectr keys
in provider-key headers, rules that would carry a key to another provider, bodies that
are empty, mislabelled, ``"stream": "true"`` or full of big integers. Paths are sent
as raw bytes (a raw socket, or a URL marked encoded), since clients normalise them.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from yarl import URL

from lectr.orgs import IssuedKey
from tests.proxy.conftest import CHAT, PROVIDER_KEY, RunningProxy, add_rule, lectr_headers
from tests.proxy.test_end_to_end import store_everything
from tests.support.providers import FakeProviders, slow_stream

BODY = orjson.dumps({"model": "gpt-4o", **CHAT})
JSON = {"Content-Type": "application/json"}
ESCAPES = (
    "/v1/../../admin",
    "/v1/%2e%2e/%2e%2e/admin",
    "/v1/..%2f..%2fadmin",
    "/v1/chat%3Fx=1",
    "/v1/chat/completions%2f..",
    "/v1/./chat/completions",
    "/v1/..;/admin",
    "/v1/models%00x",
)


async def send_raw(proxy: RunningProxy, head: bytes, body: bytes = b"") -> tuple[int, Any]:
    """Send ``head`` (request line and headers, CRLF-separated, no blank line) and
    ``body`` as bytes; (status, parsed JSON body)."""
    port = int(proxy.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            head + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
        )
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(-1), 10)
    finally:
        writer.close()
    match = re.match(rb"HTTP/1\.1 (\d{3})", raw)
    assert match, raw[:100]
    return int(match.group(1)), orjson.loads(raw.partition(b"\r\n\r\n")[2])


def raw_head(org: IssuedKey, target: bytes, *lines: bytes, method: bytes = b"POST") -> bytes:
    return b"\r\n".join(
        [
            method + b" " + target + b" HTTP/1.1",
            b"Host: 127.0.0.1",
            b"X-Lectr-Key: " + org.key.encode(),
            b"Authorization: Bearer " + PROVIDER_KEY.encode(),
            *lines,
        ]
    )


async def send(
    proxy: RunningProxy,
    path: str,
    *,
    headers: dict[str, str],
    data: bytes | None = BODY,
    method: str = "POST",
) -> tuple[int, Any]:
    """A request to ``path`` exactly as written (not normalised, not re-quoted)."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, URL(f"{proxy.url}{path}", encoded=True), data=data, headers=headers
        ) as response,
    ):
        body = await response.read()
        parsed = orjson.loads(body) if response.content_type == "application/json" else body
        return response.status, parsed


def assert_error(answer: tuple[int, Any], status: int, code: str) -> None:
    assert answer[0] == status, answer
    assert answer[1]["error"]["code"] == code


async def add_azure_config(db: asyncpg.Connection, org: IssuedKey, fake: FakeProviders) -> None:
    await db.execute(
        "INSERT INTO provider_configs (org_id, provider, endpoint, api_version, deployments)"
        " VALUES ($1, 'azure', $2, '2024-10-21', $3::jsonb)",
        org.org_id,
        f"{fake.url}/azure",
        '{"gpt-4o": "prod-gpt4o"}',
    )


# --- #1, #2: client text made valid at the edge ---------------------------------------------


async def test_header_bytes_that_are_not_utf8_are_served_and_recorded(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    head = raw_head(
        org,
        b"/v1/chat/completions",
        b"Content-Type: application/json",
        b"X-Lectr-Feature: caf\xe9-\xff",
        b"X-Lectr-Task: r\xe9sum\xe9",
    )
    status, _ = await send_raw(proxy, head, BODY)
    assert status == 200
    assert not any(name.startswith("x-lectr") for name in fake.last.header_names())
    # Published (so encodable), with the bytes read as Latin-1.
    [event] = await proxy.events(1)
    assert (event.feature, event.task_type) == ("café-ÿ", "résumé")
    assert event.status_code == 200


async def test_nul_and_invalid_text_in_the_model_are_replaced_and_the_request_served(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    headers = lectr_headers(org, **JSON)
    assert (
        await send(
            proxy,
            "/v1/chat/completions",
            headers=headers,
            data=orjson.dumps({"model": "gpt-4o\u0000", **CHAT}),
        )
    )[0] == 200
    assert fake.last.json()["model"] == "gpt-4o\x00"  # the provider gets what was sent
    # A lone surrogate escape: valid JSON that orjson refuses; forwarded as sent.
    lone = b'{"model": "\\udcffx", "messages": [{"role": "user", "content": "hi"}]}'
    assert (await send(proxy, "/v1/chat/completions", headers=headers, data=lone))[0] == 200
    assert fake.last.body == lone
    events = sorted(await proxy.events(2), key=lambda e: e.created_at)
    assert [e.requested_model for e in events] == ["gpt-4o\ufffd", "\ufffdx"]
    assert [e.actual_model for e in events] == ["gpt-4o\ufffd", "\ufffdx"]


async def test_a_path_holding_nul_is_a_400_and_reaches_no_provider(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    answer = await send(proxy, "/v1/models%00x", headers=lectr_headers(org), method="GET")
    assert_error(answer, 400, "invalid_request")
    assert fake.received == []
    [event] = await proxy.events(1)
    assert (event.endpoint, event.status_code, event.error_source) == (
        "/v1/models\ufffdx",
        400,
        "client",
    )


async def test_bad_client_text_and_skipped_rules_are_stored(
    db: asyncpg.Connection, org: IssuedKey, fake: FakeProviders, start_proxy
) -> None:
    rule_id = await add_rule(
        db, org, name="to claude", priority=1, match_feature="moved", target_provider="anthropic"
    )
    proxy = await start_proxy()
    json = b"Content-Type: application/json"
    head = raw_head(org, b"/v1/chat/completions", json, b"X-Lectr-Feature: caf\xe9-\xff")
    assert (await send_raw(proxy, head, BODY))[0] == 200
    nul_model = orjson.dumps({"model": "gpt-4o\u0000", **CHAT})
    assert (await send_raw(proxy, raw_head(org, b"/v1/chat/completions", json), nul_model))[0] == (
        200
    )
    assert (await send_raw(proxy, raw_head(org, b"/v1/models%00x", method=b"GET")))[0] == 400
    head = raw_head(org, b"/v1/chat/completions", json, b"X-Lectr-Feature: moved")
    assert (await send_raw(proxy, head, BODY))[0] == 200
    await store_everything(proxy, 4)
    rows = await db.fetch(
        "SELECT feature, requested_model, endpoint, status_code, rule_id, skipped_rule_id"
        " FROM request_logs WHERE org_id = $1",
        org.org_id,
    )
    stored = {(r["feature"], r["requested_model"], r["endpoint"], r["status_code"]) for r in rows}
    assert stored == {
        ("café-ÿ", "gpt-4o", "/v1/chat/completions", 200),
        ("untagged", "gpt-4o\ufffd", "/v1/chat/completions", 200),
        ("untagged", None, "/v1/models\ufffdx", 400),
        ("moved", "gpt-4o", "/v1/chat/completions", 200),
    }
    [moved] = [r for r in rows if r["feature"] == "moved"]
    assert (moved["rule_id"], moved["skipped_rule_id"]) == (None, rule_id)


# --- #5: paths, queries and Azure deployments stay inside the provider's base -------------


@pytest.mark.parametrize("provider", ["openai", "groq", "azure"])
@pytest.mark.parametrize("path", ESCAPES)
async def test_paths_cannot_leave_the_provider_base(
    db: asyncpg.Connection,
    org: IssuedKey,
    fake: FakeProviders,
    start_proxy,
    provider: str,
    path: str,
) -> None:
    await add_azure_config(db, org, fake)
    proxy = await start_proxy()
    headers = lectr_headers(org, **JSON, **{"X-Lectr-Provider": provider})
    assert_error(await send(proxy, path, headers=headers), 400, "invalid_request")
    assert fake.received == []
    # The same request on a safe path reaches the provider under its base.
    assert (await send(proxy, "/v1/chat/completions", headers=headers))[0] == 200
    assert [r.path.rsplit("/", 2)[-2:] for r in fake.received] == [["chat", "completions"]]


async def test_the_query_is_passed_byte_for_byte(
    db: asyncpg.Connection, org: IssuedKey, fake: FakeProviders, start_proxy
) -> None:
    await add_azure_config(db, org, fake)
    proxy = await start_proxy()
    query = "x=%23y&z=%2F&api-version=evil&w=1"
    path = f"/v1/chat/completions?{query}"
    assert (await send(proxy, path, headers=lectr_headers(org, **JSON)))[0] == 200
    assert fake.last.raw_path == f"/openai/v1/chat/completions?{query}"
    assert fake.last.query["w"] == "1"  # nothing after %23 was lost
    # Azure: the organisation's api-version replaces the client's, set once, at the end.
    azure = lectr_headers(org, **JSON, **{"X-Lectr-Provider": "azure"})
    assert (await send(proxy, path, headers=azure))[0] == 200
    assert fake.last.raw_path == (
        "/azure/openai/deployments/prod-gpt4o/chat/completions"
        "?x=%23y&z=%2F&w=1&api-version=2024-10-21"
    )
    assert (await send(proxy, "/v1/chat/completions", headers=azure))[0] == 200
    assert fake.last.raw_path.endswith("/chat/completions?api-version=2024-10-21")


async def test_an_encoded_path_that_stays_inside_reaches_the_provider_as_sent(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    answer = await send(
        proxy, "/v1/files/file-1%3Aa/content", headers=lectr_headers(org), data=None, method="GET"
    )
    assert answer[0] == 404  # the simulated provider's answer
    assert fake.last.raw_path == "/openai/v1/files/file-1%3Aa/content"


@pytest.mark.parametrize("model", ["..", ".", "../../admin", "a/b", "x?api-version=1", "x#"])
async def test_an_azure_model_cannot_change_the_deployment_path(
    db: asyncpg.Connection, org: IssuedKey, fake: FakeProviders, start_proxy, model: str
) -> None:
    await add_azure_config(db, org, fake)
    proxy = await start_proxy()
    headers = lectr_headers(org, **JSON, **{"X-Lectr-Provider": "azure"})
    data = orjson.dumps({"model": model, **CHAT})
    assert_error(
        await send(proxy, "/v1/chat/completions", headers=headers, data=data),
        400,
        "invalid_request",
    )
    assert fake.received == []


# --- #8: keys never sent where they do not belong -------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [("Authorization", "Bearer {key}"), ("x-api-key", "{key}"), ("api-key", "{key}")],
)
@pytest.mark.parametrize("with_lectr_header", [True, False])
async def test_a_lectr_key_in_a_provider_key_header_is_never_forwarded(
    proxy: RunningProxy,
    org: IssuedKey,
    fake: FakeProviders,
    name: str,
    value: str,
    with_lectr_header: bool,
) -> None:
    headers = {**JSON, name: value.format(key=org.key)}
    if with_lectr_header:
        headers["X-Lectr-Key"] = org.key
    status, body = await send(proxy, "/v1/chat/completions", headers=headers)
    assert_error((status, body), 401, "lectr_key_misplaced")
    assert "X-Lectr-Key" in body["error"]["message"]
    assert org.key not in orjson.dumps(body).decode()
    assert fake.received == []


async def test_rules_that_change_the_provider_need_a_key_for_the_target(
    db: asyncpg.Connection, org: IssuedKey, fake: FakeProviders, start_proxy
) -> None:
    rule_id = await add_rule(
        db,
        org,
        name="to claude",
        priority=1,
        match_model="gpt-4o",
        target_provider="anthropic",
        target_model="claude-haiku-5-5",
    )
    proxy = await start_proxy()
    # No key for Anthropic: the rule is skipped, the OpenAI key stays with OpenAI.
    assert (await send(proxy, "/v1/chat/completions", headers=lectr_headers(org, **JSON)))[0] == 200
    assert fake.last.path == "/openai/v1/chat/completions"
    assert fake.last.body == BODY
    assert fake.last.headers["Authorization"] == f"Bearer {PROVIDER_KEY}"
    # With one: the rule applies and only the Anthropic key goes to Anthropic.
    headers = lectr_headers(org, **JSON, **{"X-Lectr-Provider-Key-anthropic": "sk-ant-key"})
    assert (await send(proxy, "/v1/chat/completions", headers=headers))[0] == 200
    received = fake.last
    assert received.path == "/anthropic/v1/chat/completions"
    assert received.json()["model"] == "claude-haiku-5-5"
    assert received.headers["x-api-key"] == "sk-ant-key"
    assert "authorization" not in received.header_names()
    assert not any(name.startswith("x-lectr") for name in received.header_names())
    assert PROVIDER_KEY not in str(received.headers)
    # A Lectr key given as the target's key is refused like any misplaced Lectr key.
    headers = lectr_headers(org, **JSON, **{"X-Lectr-Provider-Key-anthropic": org.key})
    assert_error(
        await send(proxy, "/v1/chat/completions", headers=headers), 401, "lectr_key_misplaced"
    )
    assert len(fake.received) == 2

    events = sorted(await proxy.events(3), key=lambda e: e.created_at)
    assert [(e.provider, e.rule_id, e.skipped_rule_id) for e in events[:2]] == [
        ("openai", None, rule_id),
        ("anthropic", rule_id, None),
    ]
    assert (events[2].status_code, events[2].error_source) == (401, "client")
    # Lectr stores no provider key.
    for event in events:
        assert "sk-ant-key" not in repr(event) and PROVIDER_KEY not in repr(event)


# --- #11: bodies on model paths --------------------------------------------------------------


async def test_an_empty_or_unlabelled_body_on_a_model_path_is_a_400(
    proxy: RunningProxy, org: IssuedKey, fake: FakeProviders
) -> None:
    headers = lectr_headers(org, **JSON)
    assert_error(
        await send(proxy, "/v1/chat/completions", headers=headers, data=b""), 400, "invalid_request"
    )
    for content_type in (
        b"Content-Type: text/plain",
        b"Content-Type: application/x-www-form-urlencoded",
    ):
        head = raw_head(org, b"/v1/chat/completions", content_type)
        assert_error(await send_raw(proxy, head, BODY), 400, "invalid_request")
    assert_error(
        await send_raw(proxy, raw_head(org, b"/v1/embeddings"), BODY), 400, "invalid_request"
    )
    assert fake.received == []
    # A GET on a model path needs no body (OpenAI lists stored chat completions there).
    answer = await send(proxy, "/v1/chat/completions", headers=headers, data=None, method="GET")
    assert answer[0] == 200 and fake.last.method == "GET"


async def test_stream_given_as_a_string_counts_against_the_stream_limit(
    db: asyncpg.Connection, org: IssuedKey, fake: FakeProviders, start_proxy
) -> None:
    await db.execute(
        "UPDATE organizations SET max_concurrent_streams = 1 WHERE id = $1", org.org_id
    )
    proxy = await start_proxy()
    fake.respond_with(slow_stream)
    headers = lectr_headers(org, **JSON)
    async with aiohttp.ClientSession() as session:
        first = await session.post(
            f"{proxy.url}/v1/chat/completions",
            data=orjson.dumps({"model": "gpt-4o", **CHAT, "stream": "true"}),
            headers=headers,
        )
        assert first.status == 200
        for stream in (True, "true", 1):
            data = orjson.dumps({"model": "gpt-4o", **CHAT, "stream": stream})
            answer = await send(proxy, "/v1/chat/completions", headers=headers, data=data)
            assert_error(answer, 429, "concurrent_streams_exceeded")
        data = orjson.dumps({"model": "gpt-4o", **CHAT, "stream": "false"})
        assert (await send(proxy, "/v1/chat/completions", headers=headers, data=data))[0] == 200
        await first.read()
        first.release()
    events = await proxy.events(5)
    assert sum(e.streaming for e in events) == 4


async def test_big_integers_survive_a_model_rewrite(
    db: asyncpg.Connection, org: IssuedKey, fake: FakeProviders, start_proxy
) -> None:
    await add_rule(db, org, name="mini", priority=1, target_model="gpt-4o-mini")
    proxy = await start_proxy()
    body = (
        b'{"model": "gpt-4o", "seed": 123456789012345678901234567890,'
        b' "logit_bias": {"1": 1' + b"0" * 400 + b'}, "temperature": 1.0e0,'
        b' "messages": [{"role": "user", "content": "hi \\u00e9"}]}'
    )
    answer = await send(
        proxy, "/v1/chat/completions", headers=lectr_headers(org, **JSON), data=body
    )
    assert answer[0] == 200
    assert fake.last.body == body.replace(b'"gpt-4o"', b'"gpt-4o-mini"')
    [event] = await proxy.events(1)
    assert (event.requested_model, event.actual_model) == ("gpt-4o", "gpt-4o-mini")
