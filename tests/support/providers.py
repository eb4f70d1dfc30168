"""A local server speaking the providers' wire formats, for tests.

One server plays every provider: each is mounted under its own path prefix
(``/openai/v1``, ``/anthropic/v1``, ``/gemini/v1beta/openai``, ``/azure`` …), so a test
points every ``LECTR_<PROVIDER>_BASE_URL`` at it and then asserts what arrived.

By default it answers like the real APIs (OpenAI chat, completions, embeddings,
responses and models; Anthropic messages; streaming with or without usage), naming the
dated snapshot that answered for an alias in :data:`SNAPSHOTS`, as the real ones do. A
test can replace the answer for the next requests with :meth:`FakeProviders.respond_with`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

Handler = Callable[[web.Request, "Received"], Awaitable[web.StreamResponse]]

PREFIXES = {
    "openai": "/openai/v1",
    "anthropic": "/anthropic/v1",
    "gemini": "/gemini/v1beta/openai",
    "groq": "/groq/openai/v1",
    "mistral": "/mistral/v1",
    "deepseek": "/deepseek/v1",
    "together": "/together/v1",
    "xai": "/xai/v1",
}
STREAM_WORDS = ("Hello", " from", " the", " simulated", " provider", ".")
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
# Alias requested -> the snapshot the response names (other models are named as sent).
SNAPSHOTS = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-5-mini": "gpt-5-mini-2025-08-07",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
}


def answered(model: str | None) -> str | None:
    """The model name a response to a request for ``model`` carries."""
    return SNAPSHOTS.get(model, model) if isinstance(model, str) else model


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    # The request target as it arrived, still percent-encoded, query included.
    raw_path: str = ""

    def json(self) -> Any:
        return orjson.loads(self.body)

    def header_names(self) -> set[str]:
        return {name.lower() for name in self.headers}


@dataclass
class FakeProviders:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    # Bytes of the last response body sent, for byte-identity checks.
    sent: list[bytes] = field(default_factory=list)
    # Seconds between two chunks of every stream (real providers pace theirs); 0: at once.
    pace_s: float = 0.0
    _overrides: list[Handler] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=itertools.count)

    def base_urls(self) -> dict[str, str]:
        """``LECTR_<PROVIDER>_BASE_URL`` values pointing every provider here."""
        return {name: f"{self.url}{prefix}" for name, prefix in PREFIXES.items()}

    def env(self) -> dict[str, str]:
        """The ``LECTR_<PROVIDER>_BASE_URL`` variables that send a ``lectr proxy`` here."""
        return {f"LECTR_{name.upper()}_BASE_URL": url for name, url in self.base_urls().items()}

    def respond_with(self, handler: Handler, times: int = 1) -> None:
        self._overrides.extend([handler] * times)

    @property
    def last(self) -> Received:
        return self.received[-1]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        received = Received(
            request.method,
            request.path,
            dict(request.query),
            dict(request.headers),
            await request.read(),
            request.raw_path,
        )
        self.received.append(received)
        if self._overrides:
            return await self._overrides.pop(0)(request, received)
        return await self.default(request, received)

    async def default(self, request: web.Request, received: Received) -> web.StreamResponse:
        path = request.path
        try:
            body = orjson.loads(received.body) if received.body else {}
        except orjson.JSONDecodeError:
            body = {}
        if isinstance(body, dict) and "model" in body:
            body = {**body, "model": answered(body["model"])}
        if path.endswith("/messages"):
            if body.get("stream"):
                return await self.anthropic_stream(request, body)
            return self.json(anthropic_message(body.get("model"), next(self._ids)))
        if path.endswith("/chat/completions"):
            if body.get("stream"):
                usage = (body.get("stream_options") or {}).get("include_usage", False)
                return await self.openai_stream(request, body.get("model"), usage=usage)
            return self.json(chat_completion(body.get("model"), next(self._ids)))
        if path.endswith("/embeddings"):
            return self.json(embeddings(body.get("model")))
        if path.endswith("/responses"):
            return self.json(response_object(body.get("model"), next(self._ids)))
        if path.endswith("/models"):
            return self.json({"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]})
        return self.json({"error": {"message": "not found", "type": "invalid_request_error"}}, 404)

    def json(self, data: Any, status: int = 200) -> web.Response:
        body = orjson.dumps(data)
        self.sent.append(body)
        return web.Response(
            body=body,
            status=status,
            content_type="application/json",
            headers={"x-request-id": f"req_{len(self.sent)}"},
        )

    async def openai_stream(
        self, request: web.Request, model: str | None, *, usage: bool, words=STREAM_WORDS
    ) -> web.StreamResponse:
        chunks = [sse(openai_chunk(model, word)) for word in words]
        chunks.append(sse(openai_chunk(model, None, finish="stop")))
        if usage:
            chunks.append(sse({**openai_chunk(model, None), "choices": [], "usage": USAGE}))
        chunks.append(b"data: [DONE]\n\n")
        return await self.stream(request, chunks)

    async def anthropic_stream(self, request: web.Request, body: dict) -> web.StreamResponse:
        model = body.get("model")
        events = [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        **anthropic_message(model, 0),
                        "content": [],
                        "stop_reason": None,
                        "usage": {
                            "input_tokens": 13,
                            "output_tokens": 1,
                            "cache_read_input_tokens": 4,
                            "cache_creation_input_tokens": 0,
                        },
                    },
                },
            ),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            *[
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": word},
                    },
                )
                for word in STREAM_WORDS
            ],
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 9},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        chunks = [b"event: %s\n" % name.encode() + sse(data) for name, data in events]
        return await self.stream(request, chunks)

    async def stream(
        self, request: web.Request, chunks: list[bytes], *, delay_s: float | None = None
    ) -> web.StreamResponse:
        delay_s = self.pace_s if delay_s is None else delay_s
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "x-request-id": "req_stream"}
        )
        await response.prepare(request)
        for chunk in chunks:
            await response.write(chunk)
            if delay_s:
                await asyncio.sleep(delay_s)
        await response.write_eof()
        self.sent.append(b"".join(chunks))
        return response

    async def start(self) -> web.AppRunner:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        # Marks every answer as the provider's, so a test can tell it from Lectr's own.
        app.on_response_prepare.append(_mark_simulated)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return runner


SIMULATED_HEADER = "X-Simulated-Provider"


async def slow_stream(request: web.Request, received: Received) -> web.StreamResponse:
    """A stream that sends one chunk, then waits half a second before it ends."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n')
    await asyncio.sleep(0.5)
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def _mark_simulated(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[SIMULATED_HEADER] = "1"


def sse(data: dict) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def openai_chunk(model: str | None, word: str | None, finish: str | None = None) -> dict:
    delta = {"content": word} if word is not None else {}
    return {
        "id": "chatcmpl-stream",
        "object": "chat.completion.chunk",
        "created": 1764230400,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def chat_completion(model: str | None, n: int) -> dict:
    return {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "created": 1764230400,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the simulated provider."},
                "finish_reason": "stop",
            }
        ],
        "usage": {**USAGE, "prompt_tokens_details": {"cached_tokens": 3}},
    }


def embeddings(model: str | None) -> dict:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
        "model": model,
        "usage": {"prompt_tokens": 5, "total_tokens": 5},
    }


def response_object(model: str | None, n: int) -> dict:
    return {
        "id": f"resp_{n}",
        "object": "response",
        "created_at": 1764230400,
        "status": "completed",
        "model": model,
        "output": [
            {
                "type": "message",
                "id": f"msg_{n}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hello.", "annotations": []}],
            }
        ],
        "usage": {
            "input_tokens": 9,
            "output_tokens": 2,
            "total_tokens": 11,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def anthropic_message(model: str | None, n: int) -> dict:
    return {
        "id": f"msg_{n}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "Hello from the simulated provider."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "output_tokens": 8,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }
