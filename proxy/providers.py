"""The provider registry: one row per upstream, as data.

A client calls ``/v1/<rest>``; the request goes to ``<base_url>/<rest>`` of the chosen
provider (Azure builds a deployment URL instead, see :mod:`proxy.upstream`). Each base
URL can be overridden with ``LECTR_<PROVIDER>_BASE_URL`` for tests and corporate gateways.

Detection picks the provider whose longest model-name prefix matches the request's
model (prefixes are case-sensitive: Together's ``meta-llama/Llama-`` is not Groq's
``meta-llama/llama-``). ``X-Lectr-Provider`` overrides detection entirely.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

# How the caller's provider key (sent to Lectr as ``Authorization: Bearer``) is passed on.
BEARER = "bearer"  # Authorization: Bearer <key>
X_API_KEY = "x-api-key"  # x-api-key: <key> (Anthropic)
API_KEY = "api-key"  # api-key: <key> (Azure OpenAI)


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    base_url: str
    auth: str
    prefixes: tuple[str, ...] = ()
    # Headers added when the client did not send them.
    extra_headers: tuple[tuple[str, str], ...] = ()


_ROWS = (
    Provider(
        "openai",
        "https://api.openai.com/v1",
        BEARER,
        (
            "gpt-",
            "chatgpt-",
            "o1",
            "o3",
            "o4",
            "text-embedding-",
            "davinci-",
            "babbage-",
            "whisper-1",
            "tts-",
            "dall-e-",
            "omni-moderation-",
            "text-moderation-",
            "computer-use-",
            "codex-",
            "ft:gpt-",
        ),
    ),
    Provider(
        "anthropic",
        "https://api.anthropic.com/v1",
        X_API_KEY,
        ("claude-",),
        (("anthropic-version", "2023-06-01"),),
    ),
    Provider("azure", "", API_KEY),
    Provider(
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta/openai",
        BEARER,
        ("gemini-", "gemma-", "models/gemini-", "imagen-", "veo-"),
    ),
    Provider(
        "groq",
        "https://api.groq.com/openai/v1",
        BEARER,
        (
            "llama-",
            "llama3-",
            "meta-llama/llama-",
            "openai/gpt-oss-",
            "qwen/",
            "moonshotai/",
            "groq/",
            "whisper-large-",
            "distil-whisper-",
            "playai-",
        ),
    ),
    Provider(
        "mistral",
        "https://api.mistral.ai/v1",
        BEARER,
        (
            "mistral-",
            "open-mistral-",
            "open-mixtral-",
            "codestral-",
            "ministral-",
            "pixtral-",
            "magistral-",
            "devstral-",
            "voxtral-",
        ),
    ),
    Provider("deepseek", "https://api.deepseek.com/v1", BEARER, ("deepseek-",)),
    Provider(
        "together",
        "https://api.together.xyz/v1",
        BEARER,
        (
            "meta-llama/Llama-",
            "meta-llama/Meta-Llama-",
            "Qwen/",
            "deepseek-ai/",
            "mistralai/",
            "togethercomputer/",
            "google/gemma-",
            "moonshotai/Kimi-",
            "NousResearch/",
            "zai-org/",
        ),
    ),
    Provider("xai", "https://api.x.ai/v1", BEARER, ("grok-",)),
)

PROVIDERS: dict[str, Provider] = {row.name: row for row in _ROWS}

# Longest prefix first, so the most specific match wins.
_PREFIXES: tuple[tuple[str, str], ...] = tuple(
    sorted(
        ((prefix, row.name) for row in _ROWS for prefix in row.prefixes),
        key=lambda item: -len(item[0]),
    )
)


@functools.lru_cache(maxsize=4096)
def detect(model: str) -> str | None:
    """The provider a model name belongs to, or None when no prefix matches."""
    for prefix, name in _PREFIXES:
        if model.startswith(prefix):
            return name
    return None
