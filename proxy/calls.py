"""One proxied request as it goes, and the event it becomes once it is finished."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from proxy.caches import KeyEntry
from proxy.routing import Route
from proxy.text import storable
from proxy.usage import Usage
from schema.events import RequestEvent, TokenText

# Column limits of request_logs: longer values are cut so the event is never refused.
ENDPOINT_MAX = MODEL_MAX = INSTANCE_MAX = 200
# Version 4 (random) UUIDs from the process's own generator, seeded from the OS at start:
# 122 random bits make a clash between any two events of any proxy practically
# impossible, at half the cost of uuid.uuid4() (which asks the kernel each time).
_V4_CLEAR = ~(0xF000 << 64 | 0xC000 << 48) & (1 << 128) - 1
_V4_SET = 0x4000 << 64 | 0x8000 << 48


def event_id() -> uuid.UUID:
    return uuid.UUID(int=random.getrandbits(128) & _V4_CLEAR | _V4_SET)


@dataclass(slots=True)
class Call:
    started_at: datetime
    started: float  # perf_counter at arrival
    key: KeyEntry
    endpoint: str
    feature: str
    task: str | None
    route: Route | None = None
    streaming: bool = False
    status: int = 0
    error_category: str | None = None
    error_source: str | None = None
    ttfb_s: float | None = None
    # Time spent waiting on the provider (for the proxy's own added latency).
    upstream_s: float = 0.0
    usage: Usage | None = None
    # The model the provider's response named (as it sent it: cut and cleaned in event()).
    response_model: str | None = None
    completion: str | None = None
    truncated: bool = False
    body: Any = None  # the parsed request body, for the prompt when usage is missing

    @classmethod
    def start(cls, key: KeyEntry, path: str, feature: str, task: str | None) -> Call:
        endpoint = storable(path[:ENDPOINT_MAX])
        return cls(datetime.now(UTC), time.perf_counter(), key, endpoint, feature, task)

    def fail(self, status: int, category: str, source: str) -> None:
        self.status, self.error_category, self.error_source = status, category, source

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def event(self, instance: str, default_provider: str) -> RequestEvent:
        elapsed = self.elapsed_s()
        route = self.route
        usage = self.usage
        complete = usage is not None and None not in (usage.input_tokens, usage.output_tokens)
        return RequestEvent(
            id=event_id(),
            created_at=self.started_at,
            completed_at=self.started_at + timedelta(seconds=elapsed),
            org_id=self.key.org_id,
            api_key_id=self.key.key_id,
            provider=route.provider if route else default_provider,
            provider_unknown=route.provider_unknown if route else False,
            requested_model=_cut(route.requested_model, MODEL_MAX) if route else None,
            actual_model=_cut(route.model, MODEL_MAX) if route else None,
            response_model=_provider_text(self.response_model, MODEL_MAX),
            endpoint=self.endpoint,
            streaming=self.streaming,
            status_code=self.status,
            error_category=self.error_category,
            error_source=self.error_source,
            latency_ms=elapsed * 1000.0,
            ttfb_ms=None if self.ttfb_s is None else self.ttfb_s * 1000.0,
            input_tokens=usage.input_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
            cached_tokens=usage.cached_tokens if usage else None,
            token_source="provider" if complete else None,
            feature=self.feature,
            task_type=self.task,
            rule_id=route.rule_id if route else None,
            skipped_rule_id=route.skipped_rule_id if route else None,
            proxy_instance=instance[:INSTANCE_MAX],
            text=None if complete or self.completion is None else self._token_text(),
        )

    def _token_text(self) -> TokenText:
        prompt = request_prompt(self.body) if isinstance(self.body, dict) else None
        return TokenText(prompt=prompt, completion=self.completion or "", truncated=self.truncated)

    def added_latency_s(self) -> float:
        return max(0.0, self.elapsed_s() - self.upstream_s)


def _cut(value: str | None, limit: int) -> str | None:
    return value if value is None or len(value) <= limit else value[:limit]


def _provider_text(value: str | None, limit: int) -> str | None:
    """Text from a provider's response, cut to its column and made storable (JSON may
    hold NUL; orjson refuses lone surrogates). Cut first: a provider may send anything."""
    return None if value is None else storable(value[:limit])


def request_prompt(body: dict[str, Any]) -> Any:
    """The prompt as the consumer counts it: chat messages (with a system prompt or
    instructions as the first message), else the ``input`` or ``prompt`` as sent."""
    system = body.get("system") or body.get("instructions")
    lead = [{"role": "system", "content": system}] if system else []
    messages = body.get("messages")
    if isinstance(messages, list):
        return [*lead, *messages]
    for name in ("input", "prompt"):
        value = body.get(name)
        if value is not None:
            if lead and isinstance(value, str):
                return [*lead, {"role": "user", "content": value}]
            return value
    return None
