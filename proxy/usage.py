"""Token usage as the provider reported it, read from a response without re-encoding it.

Counts are normalised to one convention: ``input_tokens`` counts every input token,
cached ones included (OpenAI's ``prompt_tokens``; Anthropic's ``input_tokens`` plus its
cache reads and writes), and ``cached_tokens`` is the part of it read from a cache.

When a provider reports nothing (a stream without OpenAI's ``include_usage``, say), the
completion text is collected, up to a cap, for the consumer to count with a tokeniser.

The name of the model that answered is read in the same pass, from the JSON already
parsed for the usage (a stream's first event that names one), so it costs no parse of
its own. Nothing else of the body is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def parse_usage(usage: Any) -> Usage | None:
    """Usage from an OpenAI (chat, completions, embeddings, responses) or Anthropic object."""
    if not isinstance(usage, dict):
        return None
    if "prompt_tokens" in usage:  # OpenAI chat / completions / embeddings
        details = usage.get("prompt_tokens_details") or {}
        return Usage(
            _int(usage.get("prompt_tokens")),
            _int(usage.get("completion_tokens")) or 0,
            _int(details.get("cached_tokens")) if isinstance(details, dict) else None,
        )
    if "cache_read_input_tokens" in usage or "cache_creation_input_tokens" in usage:
        reads = _int(usage.get("cache_read_input_tokens")) or 0
        writes = _int(usage.get("cache_creation_input_tokens")) or 0
        fresh = _int(usage.get("input_tokens"))
        total = None if fresh is None else fresh + reads + writes
        return Usage(total, _int(usage.get("output_tokens")), reads)
    if "input_tokens" in usage or "output_tokens" in usage:  # responses API, Anthropic
        details = usage.get("input_tokens_details") or {}
        cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else None
        return Usage(_int(usage.get("input_tokens")), _int(usage.get("output_tokens")), cached)
    return None


def _merge(old: Usage | None, new: Usage | None) -> Usage | None:
    """Later stream events complete earlier ones (Anthropic sends input, then output)."""
    if old is None or new is None:
        return new or old
    return Usage(
        new.input_tokens if new.input_tokens is not None else old.input_tokens,
        new.output_tokens if new.output_tokens is not None else old.output_tokens,
        new.cached_tokens if new.cached_tokens is not None else old.cached_tokens,
    )


def _texts(data: dict[str, Any]) -> list[str]:
    """Completion text in one stream event or one response body, in any known shape."""
    out: list[str] = []
    for choice in data.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        for part in (choice.get("delta"), choice.get("message")):
            if isinstance(part, dict):
                _message_texts(part, out)
        if isinstance(choice.get("text"), str):
            out.append(choice["text"])
    delta = data.get("delta")
    if isinstance(delta, str):  # responses API: response.output_text.delta
        out.append(delta)
    elif isinstance(delta, dict):  # Anthropic content_block_delta
        for name in ("text", "partial_json", "thinking"):
            if isinstance(delta.get(name), str):
                out.append(delta[name])
    for block in data.get("content") or ():  # Anthropic non-stream
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            out.append(block["text"])
    return out


def _message_texts(message: dict[str, Any], out: list[str]) -> None:
    if isinstance(message.get("content"), str):
        out.append(message["content"])
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            out.append(function["arguments"])


def answering_model(data: dict[str, Any]) -> str | None:
    """The model a response or stream event names as the one that answered, or None
    (never an empty name: Azure's first chunk, say, has ``"model": ""``).

    OpenAI-style APIs (chat, completions, embeddings, responses; Groq, Mistral, Azure …)
    put it at the top as ``model``; Gemini's own API as ``modelVersion``; an Anthropic
    stream in ``message_start``'s ``message``, the responses API's stream in
    ``response.created``'s ``response``."""
    model = data.get("model") or data.get("modelVersion")
    if model and isinstance(model, str):
        return model
    for holder in ("message", "response"):
        inner = data.get(holder)
        if isinstance(inner, dict):
            model = inner.get("model")
            if model and isinstance(model, str):
                return model
    return None


def _event_usage(data: dict[str, Any]) -> Usage | None:
    usage = parse_usage(data.get("usage"))
    for holder in ("message", "response"):  # Anthropic message_start; response.completed
        inner = data.get(holder)
        if isinstance(inner, dict):
            usage = _merge(parse_usage(inner.get("usage")), usage)
    return usage


# (usage, completion text (only when the usage is incomplete), the model that answered).
# A plain tuple: it is made once per response, and a NamedTuple costs ten times more.
BodyReading = tuple[Usage | None, str | None, str | None]
_NOTHING: BodyReading = (None, None, None)


class BodyReader:
    """Usage (and, without it, the completion text) and the answering model of a whole
    non-streamed JSON body, from one parse."""

    @staticmethod
    def read(body: bytes) -> BodyReading:
        """Usage, completion text and answering model, from one parse of ``body``."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _NOTHING
        if isinstance(data, list) and data and isinstance(data[0], dict):
            # Gemini's streamGenerateContent without alt=sse: a JSON array of responses.
            return None, None, answering_model(data[0])
        if not isinstance(data, dict):
            return _NOTHING
        model = answering_model(data)
        usage = parse_usage(data.get("usage"))  # where every known API puts it
        if usage is not None and usage.input_tokens is not None:
            return usage, None, model
        usage = _merge(usage, _event_usage(data))
        if usage is not None and usage.input_tokens is not None:
            return usage, None, model
        return usage, "".join(_texts(data)), model


class StreamScanner:
    """Reads server-sent events as they pass, without holding the stream.

    Keeps the usage the provider reports, the first model name an event gives (looked
    for only until one is found) and, up to ``text_cap`` characters, the completion
    text (needed only when no usage comes).
    """

    def __init__(self, text_cap: int) -> None:
        self.usage: Usage | None = None
        self.model: str | None = None
        self.truncated = False
        self._cap = text_cap
        self._size = 0
        self._parts: list[str] = []
        self._partial = b""

    def feed(self, chunk: bytes) -> None:
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line)

    def _line(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return
        payload = line[5:].strip()
        if not payload or payload == b"[DONE]":
            return
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(data, dict):
            return
        if self.model is None:
            self.model = answering_model(data)
        usage = _event_usage(data)
        if usage is not None:
            self.usage = _merge(self.usage, usage)
        if not self.truncated:
            for text in _texts(data):
                self._keep(text)

    def _keep(self, text: str) -> None:
        room = self._cap - self._size
        if len(text) > room:
            text, self.truncated = text[:room], True
        self._parts.append(text)
        self._size += len(text)

    def finish(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = b""

    @property
    def text(self) -> str:
        return "".join(self._parts)
