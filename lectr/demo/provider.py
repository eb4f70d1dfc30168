"""A simulated LLM provider for the demo's live traffic: one local aiohttp server that
speaks OpenAI's chat completions, Anthropic's messages and Gemini's OpenAI-compatible
chat completions, streamed (server-sent events, paced like a real model) or not.

Each provider is mounted under its own prefix (:data:`PREFIXES`); point
``LECTR_<PROVIDER>_BASE_URL`` at :meth:`SimulatedProvider.base_urls`. Answers are made-up
words with usage counted from what was sent (about four characters a token), naming the
dated snapshot that answered, as the real APIs do. With ``error_rate`` a share of the
requests fail the way providers fail (429 rate limited, 500, Anthropic's 529
overloaded), in each provider's error shape.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import orjson
from aiohttp import web

from lectr.demo.catalogue import answered_by

PREFIXES = {
    "openai": "/openai/v1",
    "anthropic": "/anthropic/v1",
    "gemini": "/gemini/v1beta/openai",
}
WORDS = (
    "the", "customer", "asked", "about", "their", "invoice", "and", "we", "explained",
    "billing", "cycle", "clearly", "summary", "shows", "revenue", "grew", "while", "latency",
    "stayed", "within", "target", "for", "most", "regions", "please", "review", "attached",
    "changes", "before", "release", "goes", "out", "to", "production",
)  # fmt: skip
DEFAULT_MAX_TOKENS = 120


class SimulatedProvider:
    """The server; :meth:`start` binds it to a free port on 127.0.0.1."""

    def __init__(
        self, *, pace_s: float = 0.02, error_rate: float = 0.0, seed: int | None = None
    ) -> None:
        self.pace_s = pace_s
        self.error_rate = error_rate
        self.rng = random.Random(seed)
        self.url = ""
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self._ids = 0

    def base_urls(self) -> dict[str, str]:
        """``LECTR_<PROVIDER>_BASE_URL`` values pointing each provider here."""
        return {name: f"{self.url}{prefix}" for name, prefix in PREFIXES.items()}

    async def start(self) -> None:
        app = web.Application()
        for prefix in PREFIXES.values():
            app.router.add_post(f"{prefix}/chat/completions", self._chat)
        app.router.add_post(f"{PREFIXES['anthropic']}/messages", self._messages)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- OpenAI and Gemini: chat completions -------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        if body is None:
            return _openai_error(400, "invalid_request_error", "the body is not JSON")
        failure = self._failure()
        if failure is not None:
            status, kind = failure
            return _openai_error(status, kind, "simulated provider error")
        model = answered_by(str(body.get("model") or "gpt-4o"))
        prompt = _prompt_tokens(body.get("messages"))
        words = self._words(body)
        ident = self._next_id("chatcmpl")
        created = int(time.time())
        if not body.get("stream"):
            await asyncio.sleep(self.pace_s * len(words) / 4)
            text = " ".join(words)
            return _json_response(
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text, "refusal": None},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": _openai_usage(prompt, len(words)),
                }
            )

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": w if i == 0 else f" {w}"}) for i, w in enumerate(words)]
        events.append(chunk({}, "stop"))
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            events.append({**chunk({}), "choices": [], "usage": _openai_usage(prompt, len(words))})
        frames = [b"data: " + orjson.dumps(e) + b"\n\n" for e in events]
        frames.append(b"data: [DONE]\n\n")
        return await self._stream(request, frames)

    # -- Anthropic: messages ------------------------------------------------------------

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        if body is None:
            return _anthropic_error(400, "invalid_request_error", "the body is not JSON")
        failure = self._failure()
        if failure is not None:
            status, _ = failure
            kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
            return _anthropic_error(status, kind, "simulated provider error")
        model = answered_by(str(body.get("model") or "claude-haiku-4-5"))
        prompt = _prompt_tokens(body.get("messages")) + _tokens_of(body.get("system"))
        words = self._words(body)
        message = {
            "id": self._next_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": " ".join(words)}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": prompt,
                "output_tokens": len(words),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
        if not body.get("stream"):
            await asyncio.sleep(self.pace_s * len(words) / 4)
            return _json_response(message)
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {**message["usage"], "output_tokens": 1},
        }
        events: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": start}),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
        ]
        events += [
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": w if i == 0 else f" {w}"},
                },
            )
            for i, w in enumerate(words)
        ]
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": len(words)},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        frames = [
            b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
            for name, data in events
        ]
        return await self._stream(request, frames)

    # -- shared ---------------------------------------------------------------------------

    async def _stream(self, request: web.Request, frames: list[bytes]) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        for frame in frames:
            await response.write(frame)
            if self.pace_s:
                await asyncio.sleep(self.pace_s * self.rng.uniform(0.5, 1.5))
        await response.write_eof()
        return response

    def _failure(self) -> tuple[int, str] | None:
        self.requests += 1
        if not self.error_rate or self.rng.random() >= self.error_rate:
            return None
        return self.rng.choice(
            ((429, "rate_limit_error"), (500, "server_error"), (529, "server_error"))
        )

    def _words(self, body: dict[str, Any]) -> list[str]:
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_MAX_TOKENS
        limit = limit if isinstance(limit, int) and limit > 0 else DEFAULT_MAX_TOKENS
        count = max(1, min(limit, int(limit * self.rng.uniform(0.3, 0.9))))
        return [self.rng.choice(WORDS) for _ in range(count)]

    def _next_id(self, kind: str) -> str:
        self._ids += 1
        return f"{kind}_demo{self._ids:08d}"


async def _json(request: web.Request) -> dict[str, Any] | None:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def _tokens_of(content: Any) -> int:
    """Tokens in a message's content (a string or a list of parts), ~4 characters each."""
    if isinstance(content, str):
        return max(1, len(content) // 4)
    if isinstance(content, list):
        return sum(_tokens_of(part.get("text")) for part in content if isinstance(part, dict))
    return 0


def _prompt_tokens(messages: Any) -> int:
    if not isinstance(messages, list):
        return 1
    return sum(4 + _tokens_of(m.get("content")) for m in messages if isinstance(m, dict))


def _openai_usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def _json_response(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _openai_error(status: int, kind: str, message: str) -> web.Response:
    return _json_response({"error": {"message": message, "type": kind, "code": None}}, status)


def _anthropic_error(status: int, kind: str, message: str) -> web.Response:
    return _json_response({"type": "error", "error": {"type": kind, "message": message}}, status)
