"""Live traffic: requests through the demo's proxy, as the demo org's features send them.

Each request is one of the catalogue's feature x model pairs, picked in proportion to
its traffic, sent with the demo key and the feature and task headers, streamed or not
as that feature usually is (OpenAI-style streams ask for usage most of the time, as
the SDKs can). Responses are read to the end and thrown away.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from lectr.demo.catalogue import ENDPOINTS, FEATURES, Feature, ModelUse

# Requests in flight at most; beyond it a tick is skipped (the proxy is struggling).
MAX_IN_FLIGHT = 64
REQUEST_TIMEOUT_S = 60.0
# How long stopping waits for requests in flight before cancelling them.
STOP_GRACE_S = 3.0
PROMPTS = {
    "support-bot": "My invoice shows two charges this month. Can you explain why?",
    "search-summaries": "Summarise these search results about latency budgets in two lines.",
    "ticket-classifier": "Classify this ticket: 'Cannot log in after password reset.'",
    "code-review": "Review this diff for bugs: def add(a, b): return a - b",
    "email-drafts": "Draft a short, friendly reply confirming the meeting on Thursday.",
    "invoice-parser": "Extract the total, currency and due date from: Total EUR 420, due 1 May.",
}


@dataclass(frozen=True)
class Scenario:
    feature: Feature
    use: ModelUse
    weight: float


SCENARIOS = tuple(
    Scenario(feat, use, feat.peak_per_hour * use.share) for feat in FEATURES for use in feat.models
)


@dataclass
class Counts:
    sent: int = 0
    failed: int = 0
    streamed: int = 0


class LiveTraffic:
    """Sends ``rps`` requests a second to the proxy at ``proxy_url`` until stopped."""

    def __init__(
        self,
        proxy_url: str,
        key: str,
        rps: float,
        *,
        seed: int,
        alive: Callable[[], bool] = lambda: True,
    ) -> None:
        self.proxy_url = proxy_url
        self.key = key
        self.rps = rps
        self.rng = random.Random(f"lectr-demo-live:{seed}")
        self.alive = alive
        self.total = Counts()
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(
        self, stop: asyncio.Event, *, report: Callable[[str], None], every_s: float = 10.0
    ) -> Counts:
        """Send until ``stop`` is set (or the proxy is gone); call ``report`` with a
        status line every ``every_s``. Returns the totals."""
        loop = asyncio.get_running_loop()
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            interval = 1.0 / self.rps
            next_send = loop.time()
            next_report = loop.time() + every_s
            mark = Counts()
            while not stop.is_set() and self.alive():
                if len(self._tasks) < MAX_IN_FLIGHT:
                    task = asyncio.create_task(self._request(session))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                next_send += interval
                now = loop.time()
                if now >= next_report:
                    report(self._status(mark, every_s))
                    mark = Counts(self.total.sent, self.total.failed, self.total.streamed)
                    next_report = now + every_s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, next_send - loop.time()))
            await self._finish()
        return self.total

    def _status(self, mark: Counts, every_s: float) -> str:
        sent = self.total.sent - mark.sent
        failed = self.total.failed - mark.failed
        return (
            f"live: {self.total.sent} requests sent, {self.total.failed} failed "
            f"({self.total.streamed} streamed); last {every_s:.0f} s: {sent} sent "
            f"({sent / every_s:.1f}/s), {failed} failed"
        )

    async def _finish(self) -> None:
        """Let requests in flight end for a moment, then cancel the rest."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _pick(self) -> Scenario:
        return self.rng.choices(SCENARIOS, weights=[s.weight for s in SCENARIOS])[0]

    async def _request(self, session: aiohttp.ClientSession) -> None:
        scenario = self._pick()
        feat, use = scenario.feature, scenario.use
        stream = self.rng.random() < feat.streaming_share
        url, body, headers = self._build(feat, use, stream)
        self.total.sent += 1
        self.total.streamed += stream
        try:
            async with session.post(url, json=body, headers=headers) as response:
                async for _ in response.content.iter_any():
                    pass
                if response.status >= 400:
                    self.total.failed += 1
        except (aiohttp.ClientError, TimeoutError):
            self.total.failed += 1

    def _build(
        self, feat: Feature, use: ModelUse, stream: bool
    ) -> tuple[str, dict[str, Any], dict[str, str]]:
        headers = {
            "X-Lectr-Key": self.key,
            "X-Lectr-Feature": feat.name,
            "X-Lectr-Task": feat.task_type,
            "Authorization": f"Bearer sk-demo-{use.provider}",
        }
        max_tokens = max(4, min(feat.completion_tokens // 4, 80))
        messages = [{"role": "user", "content": PROMPTS[feat.name]}]
        body: dict[str, Any] = {"model": use.model, "max_tokens": max_tokens, "stream": stream}
        if use.provider == "anthropic":
            headers["anthropic-version"] = "2023-06-01"
            body.update(system="You are a helpful assistant.", messages=messages)
        else:
            body["messages"] = [{"role": "system", "content": "Be brief."}, *messages]
            if stream and self.rng.random() < 0.8:
                body["stream_options"] = {"include_usage": True}
        return f"{self.proxy_url}{ENDPOINTS[use.provider]}", body, headers
