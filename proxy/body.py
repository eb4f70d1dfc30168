"""The request body: read once for its model and ``stream`` flag, forwarded as sent.

The body is parsed with orjson. What orjson refuses but JSON allows (an integer beyond
a double's range, a lone surrogate escape) is parsed again with the standard library, so
such a body is forwarded rather than refused; it is then not used for token counting.

A rule's model rewrite changes only the bytes of the top-level ``model`` value: the rest
of the body (big integers, number spellings, escapes, key order) reaches the provider
exactly as the client sent it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from proxy.errors import LectrError

# Paths (after /v1/) whose POST body must be a JSON object naming a model.
MODEL_PATHS = frozenset(
    {
        "chat/completions",
        "completions",
        "embeddings",
        "responses",
        "messages",
        "messages/count_tokens",
        "moderations",
        "audio/speech",
        "images/generations",
    }
)
# A JSON string (group 1) and the colon after it when it is a key (group 2), or a bracket.
_TOKEN = re.compile(rb'("[^"\\]*(?:\\.[^"\\]*)*")(\s*:)?|[\[\]{}]', re.S)
_MODEL_KEY = b'"model"'
# `stream` values a lenient server (pydantic, say) reads as false.
_NOT_STREAM = frozenset({"", "0", "false", "f", "no", "n", "off"})


def needs_model(rest: str, method: str) -> bool:
    return method == "POST" and rest in MODEL_PATHS


def parse(body: bytes, rest: str, content_type: str, method: str) -> tuple[Any, bool]:
    """(the JSON body or None when it is not JSON, whether it may be used for token
    counting). On a path that needs a model, a body that is empty, not sent as JSON, or
    not a JSON object is a 400; other paths forward any body as it is."""
    if needs_model(rest, method):
        return _model_body(body, content_type)
    if not body or ("json" not in content_type and content_type != "application/octet-stream"):
        return None, False
    try:
        return _loads(body)
    except ValueError:
        return None, False


def _model_body(body: bytes, content_type: str) -> tuple[Any, bool]:
    if not body:
        raise LectrError("invalid_request", "the request body is empty: send a JSON object")
    if "json" not in content_type:
        raise LectrError(
            "invalid_request", "send the request body as JSON (Content-Type: application/json)"
        )
    try:
        parsed, exact = _loads(body)
    except ValueError as exc:
        raise LectrError("invalid_request", f"the request body is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise LectrError("invalid_request", "the request body must be a JSON object")
    return parsed, exact


def _loads(body: bytes) -> tuple[Any, bool]:
    try:
        return orjson.loads(body), True
    except orjson.JSONDecodeError:
        pass
    try:  # big integers, lone surrogates: valid JSON that orjson does not take
        return json.loads(body, parse_constant=_no_constant), False
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def is_stream(value: Any) -> bool:
    """Whether a ``stream`` value may start a stream. Providers differ on a value that is
    not a boolean: strict ones refuse it (400 at once), lenient ones read ``"true"`` or
    ``1`` as true. It counts as a stream unless it reads as false, so the
    concurrent-stream limit holds whatever the provider makes of it."""
    if value is True or value is None or value is False:
        return value is True
    if isinstance(value, str):
        return value.strip().lower() not in _NOT_STREAM
    return value != 0


def rewrite_model(body: bytes, parsed: dict[str, Any], model: str) -> bytes:
    """``body`` with its model set to ``model``, every other byte unchanged when the body
    has a top-level string ``model`` (the usual case); else re-encoded with it added."""
    rewritten = with_model(body, model)
    if rewritten is not None:
        return rewritten
    # json, not orjson: it keeps big integers (and escapes lone surrogates).
    return json.dumps({**parsed, "model": model}, separators=(",", ":")).encode()


def with_model(body: bytes, model: str) -> bytes | None:
    """``body`` (a JSON object) with the value of each top-level ``model`` key that is a
    string replaced by ``model``, every other byte unchanged; None when there is none."""
    spans: list[tuple[int, int]] = []
    depth = 0
    value_at = -1  # where the value of a top-level "model" key starts (after the colon)
    for match in _TOKEN.finditer(body):
        string = match.group(1)
        if string is None:  # a bracket
            depth += 1 if match.group() in b"[{" else -1
        elif value_at >= 0 and not body[value_at : match.start()].strip():
            spans.append(match.span())
        elif depth == 1 and match.group(2) and _is_model_key(string):
            value_at = match.end()
            continue
        value_at = -1
    if not spans:
        return None
    value = orjson.dumps(model)
    for start, end in reversed(spans):
        body = body[:start] + value + body[end:]
    return body


def _is_model_key(string: bytes) -> bool:
    if string == _MODEL_KEY:
        return True
    return b"\\" in string and orjson.loads(string) == "model"
