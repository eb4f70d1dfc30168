"""The proxy's pure parts, with chosen inputs: detection, usage, limits, URLs, settings."""

from __future__ import annotations

import uuid

import orjson
import pytest

from lectr.settings import SettingsError
from proxy.body import is_stream, rewrite_model, with_model
from proxy.caches import ProviderConfig, Rule
from proxy.calls import event_id, request_prompt
from proxy.limits import RateLimiter, StreamLimiter
from proxy.paths import BadPath, client_rest, with_param
from proxy.providers import detect
from proxy.routing import InvalidProvider, Route, provider_header, route
from proxy.settings import ProxySettings
from proxy.text import from_header, storable
from proxy.upstream import (
    AzureConfigMissing,
    headers_for,
    misplaced_lectr_key,
    provider_key,
    url_for,
)
from proxy.usage import BodyReader, StreamScanner, Usage, parse_usage


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o", "openai"),
        ("o3", "openai"),
        ("text-embedding-3-small", "openai"),
        ("whisper-1", "openai"),
        ("whisper-large-v3", "groq"),
        ("claude-opus-5", "anthropic"),
        ("gemini-2.5-pro", "gemini"),
        ("meta-llama/llama-4-scout-17b-16e-instruct", "groq"),
        ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "together"),
        ("moonshotai/Kimi-K2-Instruct", "together"),
        ("moonshotai/kimi-k2-instruct", "groq"),
        ("codestral-latest", "mistral"),
        ("deepseek-reasoner", "deepseek"),
        ("grok-4", "xai"),
        ("my-finetune", None),
    ],
)
def test_detection_by_longest_prefix(model: str, provider: str | None) -> None:
    assert detect(model) == provider


def rule(**fields: object) -> Rule:
    defaults: dict[str, object] = dict.fromkeys(
        (
            "match_feature",
            "match_task",
            "match_provider",
            "match_model",
            "target_provider",
            "target_model",
        )
    )
    return Rule(id=uuid.uuid4(), priority=1, **{**defaults, **fields})  # type: ignore[arg-type]


def chat_route(
    rules: list[Rule], model: str, feature: str = "untagged", rest: str = "chat/completions"
) -> Route:
    return route(
        rules,
        header=None,
        rest=rest,
        model=model,
        feature=feature,
        task=None,
        default_provider="openai",
    )


def test_first_matching_rule_wins_and_unset_conditions_are_wildcards() -> None:
    first = rule(match_feature="search", target_model="gpt-4o-mini")
    second = rule(target_model="gpt-5-nano")
    chosen = chat_route([first, second], "gpt-4o", feature="search")
    assert (chosen.model, chosen.rule_id) == ("gpt-4o-mini", first.id)
    other = chat_route([first, second], "gpt-4o", feature="chat")
    assert (other.model, other.rule_id) == ("gpt-5-nano", second.id)


def test_rules_cannot_move_anthropic_native_requests_or_target_unknown_providers() -> None:
    to_openai = rule(target_provider="openai", target_model="gpt-4o")
    native = chat_route([to_openai], "claude-opus-5", rest="messages")
    assert (native.provider, native.model, native.rule_id) == ("anthropic", "claude-opus-5", None)
    unknown = chat_route([rule(target_provider="nowhere")], "gpt-4o")
    assert (unknown.provider, unknown.rule_id) == ("openai", None)


def test_usage_shapes_are_normalised() -> None:
    assert parse_usage({"prompt_tokens": 10, "completion_tokens": 2}) == Usage(10, 2, None)
    assert parse_usage(
        {"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4}}
    ) == Usage(10, 2, 4)
    # Anthropic counts cache reads and writes apart from input_tokens; Lectr adds them in.
    assert parse_usage(
        {
            "input_tokens": 5,
            "output_tokens": 3,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 20,
        }
    ) == Usage(125, 3, 100)
    assert parse_usage({"input_tokens": 7, "output_tokens": 1}) == Usage(7, 1, None)
    assert parse_usage({"prompt_tokens": True}) == Usage(None, 0, None)
    assert parse_usage("nonsense") is None


def test_stream_scanner_handles_events_split_across_chunks() -> None:
    stream = (
        b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":"lo"}}]}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
        b"data: [DONE]\n\n"
    )
    scanner = StreamScanner(text_cap=100)
    for i in range(0, len(stream), 7):  # arbitrary chunk boundaries
        scanner.feed(stream[i : i + 7])
    scanner.finish()
    assert scanner.text == "Hello"
    assert scanner.usage == Usage(3, 2, None)


def test_responses_api_stream_and_tool_calls_are_read() -> None:
    scanner = StreamScanner(text_cap=100)
    scanner.feed(
        b"event: response.output_text.delta\n"
        b'data: {"type":"response.output_text.delta","delta":"Hi"}\n\n'
        b'data: {"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{\\"a\\""}}]}}]}\n\n'
        b"event: response.completed\n"
        b'data: {"type":"response.completed","response":{"usage":'
        b'{"input_tokens":4,"output_tokens":1}}}\n\n'
    )
    scanner.finish()
    assert scanner.text == 'Hi{"a"'
    assert scanner.usage == Usage(4, 1, None)


def test_body_reader_returns_text_only_without_usage() -> None:
    usage, text, _ = BodyReader.read(b'{"usage":{"prompt_tokens":1,"completion_tokens":1}}')
    assert usage == Usage(1, 1, None) and text is None
    usage, text, _ = BodyReader.read(b'{"content":[{"type":"text","text":"Hi"}]}')
    assert usage is None and text == "Hi"
    assert BodyReader.read(b"not json")[:2] == (None, None)


def test_prompt_for_counting_takes_each_api_shape() -> None:
    messages = [{"role": "user", "content": "hi"}]
    assert request_prompt({"model": "m", "messages": messages}) == messages
    assert request_prompt({"system": "Be brief", "messages": messages}) == [
        {"role": "system", "content": "Be brief"},
        *messages,
    ]
    assert request_prompt({"instructions": "Be brief", "input": "hi"}) == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert request_prompt({"prompt": ["a", "b"]}) == ["a", "b"]
    assert request_prompt({"model": "m"}) is None


def test_rate_limiter_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    org = uuid.uuid4()
    assert [limiter.acquire(org, 2) for _ in range(3)] == [0, 0, 30]
    now[0] = 29.0
    assert limiter.acquire(org, 2) == 1
    now[0] = 30.0
    assert limiter.acquire(org, 2) == 0
    assert limiter.acquire(org, None) == 0


def test_stream_limiter_counts_per_org() -> None:
    limiter = StreamLimiter()
    a, b = uuid.uuid4(), uuid.uuid4()
    assert limiter.acquire(a, 1) and not limiter.acquire(a, 1)
    assert limiter.acquire(b, 1)
    limiter.release(a)
    assert limiter.open_streams(a) == 0 and limiter.acquire(a, 1)


def test_upstream_headers_per_provider() -> None:
    client = [
        ("Authorization", "Bearer sk-1"),
        ("X-Lectr-Key", "lc_key_x"),
        ("x-lectr-feature", "f"),
        ("Content-Type", "application/json"),
        ("Connection", "keep-alive"),
        ("Accept-Encoding", "gzip"),
        ("OpenAI-Organization", "org-1"),
    ]
    key = provider_key(dict(client))
    assert key == "sk-1"
    openai = headers_for("openai", client, key)
    assert openai == {
        "Authorization": "Bearer sk-1",
        "Content-Type": "application/json",
        "OpenAI-Organization": "org-1",
        "Accept-Encoding": "identity",
    }
    anthropic = headers_for("anthropic", client, key)
    assert anthropic["x-api-key"] == "sk-1" and "Authorization" not in anthropic
    assert anthropic["anthropic-version"] == "2023-06-01"
    azure = headers_for("azure", client, key)
    assert azure["api-key"] == "sk-1" and "Authorization" not in azure


def test_urls_and_azure_config() -> None:
    assert (
        str(
            url_for(
                "groq",
                "chat/completions",
                "",
                model="llama-3.1-8b-instant",
                base_urls={},
                config=None,
            )
        )
        == "https://api.groq.com/openai/v1/chat/completions"
    )
    assert (
        str(
            url_for(
                "openai",
                "files/a%2Eb",
                "limit=2&x=%23y",
                model=None,
                base_urls={"openai": "http://gw/v1"},
                config=None,
            )
        )
        == "http://gw/v1/files/a%2Eb?limit=2&x=%23y"  # as sent: not re-quoted
    )
    config = ProviderConfig("https://acme.openai.azure.com/", "2024-10-21", {"gpt-4o": "prod"})
    assert (
        str(url_for("azure", "embeddings", "", model="gpt-4o", base_urls={}, config=config))
        == "https://acme.openai.azure.com/openai/deployments/prod/embeddings?api-version=2024-10-21"
    )
    # The organisation's api-version replaces the client's; the rest of the query is kept.
    assert str(
        url_for(
            "azure", "embeddings", "a=%23&api-version=x&b", model="m", base_urls={}, config=config
        )
    ).endswith("/openai/deployments/m/embeddings?a=%23&b&api-version=2024-10-21")
    for model in ("..", ".", "a/b", "a?b", "a#b", "a\\b", "a\x00b"):
        with pytest.raises(BadPath):
            url_for("azure", "embeddings", "", model=model, base_urls={}, config=config)
    with pytest.raises(AzureConfigMissing):
        url_for("azure", "chat/completions", "", model="gpt-4o", base_urls={}, config=None)
    with pytest.raises(AzureConfigMissing):
        url_for(
            "azure",
            "chat/completions",
            "",
            model="gpt-4o",
            base_urls={},
            config=ProviderConfig("https://acme.openai.azure.com", None, {}),
        )


def test_proxy_settings_from_environment() -> None:
    settings = ProxySettings.from_env(
        {
            "LECTR_OPENAI_BASE_URL": "http://127.0.0.1:9000/v1/",
            "LECTR_PROXY_MAX_BODY_BYTES": "1024",
            "LECTR_DEFAULT_PROVIDER": "Anthropic",
            "LECTR_PROXY_RECORD_EVENTS": "off",
            "LECTR_REDIS_URL": "redis://:secret@redis:6379/2",
            "LECTR_REDIS_TIMEOUT_MS": "2.5",
        }
    )
    assert settings.redis_url == "redis://:secret@redis:6379/2"
    assert settings.redis_timeout_ms == 2.5
    assert settings.redis_lease_s == 30.0
    assert ProxySettings.from_env({}).redis_url is None
    assert settings.base_urls == {"openai": "http://127.0.0.1:9000/v1"}
    assert settings.max_body_bytes == 1024
    assert settings.default_provider == "anthropic"
    assert settings.record_events is False


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LECTR_ANTHROPIC_BASE_URL", "ftp://x"),
        ("LECTR_PROXY_BUFFER_SIZE", "0"),
        ("LECTR_UPSTREAM_READ_TIMEOUT_S", "-1"),
        ("LECTR_DEFAULT_PROVIDER", "azure"),
        ("LECTR_PROXY_RECORD_EVENTS", "maybe"),
        ("LECTR_REDIS_URL", "http://redis:6379"),
        ("LECTR_REDIS_URL", "redis://"),
        ("LECTR_REDIS_TIMEOUT_MS", "0"),
        ("LECTR_REDIS_LEASE_S", "-3"),
    ],
)
def test_bad_proxy_settings_name_their_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        ProxySettings.from_env({variable: value})
    assert caught.value.variable == variable


def test_event_ids_are_random_version_4_uuids() -> None:
    ids = [event_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert {(i.version, i.variant) for i in ids} == {(4, uuid.RFC_4122)}


def test_client_text_is_made_storable() -> None:
    # aiohttp decodes header bytes that are not UTF-8 with surrogateescape.
    assert from_header("caf\udce9-\udcff") == "café-ÿ"
    assert from_header("café\udcff") == "caféÿ"  # valid UTF-8 kept, the stray byte Latin-1
    assert from_header("support-bot") == "support-bot"
    assert from_header("a\x00b") == "a\ufffdb"
    assert storable("gpt-4o\x00") == "gpt-4o\ufffd"
    assert storable("\ud800x\udcff") == "\ufffdx\ufffd"
    assert storable("café") == "café"
    for value in ("caf\udce9-\udcff", "\ud800\x00"):
        orjson.dumps([from_header(value), storable(value)])  # encodable


@pytest.mark.parametrize(
    "raw_path",
    [
        "/v1/../../admin",
        "/v1/%2e%2e/%2e%2e/admin",
        "/v1/%2E./admin",
        "/v1/..%2f..%2fadmin",
        "/v1/a/..;x/admin",
        "/v1/./models",
        "/v1/chat%3Fx=1",
        "/v1/chat%23x",
        "/v1/models%00x",
        "/v1/a%5c..%5cadmin",
        "/v1/a\\..\\admin",
        "/%761/chat/completions",
        "/v2/models",
    ],
)
def test_paths_that_could_leave_the_base_are_refused(raw_path: str) -> None:
    with pytest.raises(BadPath):
        client_rest(raw_path)


def test_safe_paths_are_kept_as_sent() -> None:
    assert client_rest("/v1/chat/completions") == "chat/completions"
    assert client_rest("/v1/files/file-1%3Aa/content") == "files/file-1%3Aa/content"
    assert client_rest("/v1/models/ft:gpt-4o:acme..v2") == "models/ft:gpt-4o:acme..v2"
    assert client_rest("/v1/.well-known/x") == ".well-known/x"
    assert with_param("", "api-version", "2024-10-21") == "api-version=2024-10-21"
    assert with_param("api%2Dversion=1&x=%23", "api-version", "2") == "x=%23&api-version=2"


def test_model_rewrite_changes_only_the_model_bytes() -> None:
    body = (
        b'{"messages": [{"role": "user", "content": "say \\"model\\": \\"x\\""},'
        b' {"model": "inner"}], "seed": 123456789012345678901234567890,'
        b' "temperature": 1.0e0, "model" : "gpt-4o", "tools": {"model": "t"}}'
    )
    expected = body.replace(b'"model" : "gpt-4o"', b'"model" : "gpt-4o-mini"')
    assert with_model(body, "gpt-4o-mini") == expected
    assert with_model(b'{"\\u006dodel":"a\\u0000"}', "b") == b'{"\\u006dodel":"b"}'
    assert with_model(b'{"model": 1, "x": "y"}', "b") is None
    # No string model to replace: re-encoded with the model added, big integers kept.
    big = b'{"seed": 1' + b"0" * 400 + b"}"
    assert (
        rewrite_model(big, {"seed": 10**400}, "m") == b'{"seed":1' + b"0" * 400 + b',"model":"m"}'
    )


def test_stream_values_that_may_start_a_stream() -> None:
    assert [is_stream(v) for v in (True, "true", "True", 1, "yes")] == [True] * 5
    assert [is_stream(v) for v in (False, None, "false", "0", 0, "")] == [False] * 6


def test_provider_header_and_lectr_keys_in_provider_headers() -> None:
    assert provider_header(" Groq ") == "groq" and provider_header(None) is None
    with pytest.raises(InvalidProvider):
        provider_header("opneai")
    assert misplaced_lectr_key({"Authorization": "Bearer lc_key_abc"}) == "Authorization"
    assert misplaced_lectr_key({"api-key": "lc_key_abc"}) == "api-key"
    assert misplaced_lectr_key({"Authorization": "Bearer sk-1"}) is None
    headers = {"Authorization": "Bearer sk-openai", "X-Lectr-Provider-Key-groq": " gsk-1 "}
    assert provider_key(headers, "groq") == "gsk-1"
    assert provider_key(headers, "openai") == "sk-openai"


def test_a_rule_changing_the_provider_needs_a_key_for_the_target() -> None:
    to_groq = rule(target_provider="groq", target_model="llama-3.1-8b-instant")

    def routed(has_key: bool) -> Route:
        return route(
            [to_groq],
            header=None,
            rest="chat/completions",
            model="gpt-4o",
            feature="untagged",
            task=None,
            default_provider="openai",
            has_key_for=lambda provider: has_key and provider == "groq",
        )

    skipped = routed(False)
    assert (skipped.provider, skipped.model, skipped.rule_id) == ("openai", "gpt-4o", None)
    assert skipped.skipped_rule_id == to_groq.id
    applied = routed(True)
    assert (applied.provider, applied.model, applied.rule_id) == (
        "groq",
        "llama-3.1-8b-instant",
        to_groq.id,
    )
    assert applied.skipped_rule_id is None
    # A rule that keeps the provider needs no key.
    same = chat_route([rule(target_provider="openai", target_model="gpt-4o-mini")], "gpt-4o")
    assert (same.model, same.skipped_rule_id) == ("gpt-4o-mini", None)
