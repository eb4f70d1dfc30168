"""POSTing alerts to the webhook URLs an org lists (``organizations.alert_webhooks``).

Each anomaly goes to each URL once, as JSON with a Slack-compatible ``text`` (the alert's
sentence and link, so a Slack or Mattermost incoming webhook shows it as is) and an
``anomaly`` object for programs. Only a 2xx answer counts as delivered; redirects are
not followed (a webhook must not bounce us to another host). A URL that fails (no
answer within the timeout, a refused connection, any other status) gets none of its
remaining alerts this run: they are all retried at the next run, which keeps a dead
endpoint from costing one timeout per alert. URLs are never logged whole: Slack-style
webhook URLs carry their secret in the path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from scheduler.alert_email import SIGMA, Alert, sentence, value

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0

Delivered = Callable[[Alert, str], Awaitable[None]]
"""Called with (alert, url) right after a URL accepted an alert; records it."""


def _slack_escape(text: str) -> str:
    """Slack reads ``<…>`` as a link or mention: escape the three characters it asks for."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def text(alert: Alert) -> str:
    """One line: ``[Lectr] acme: Cost for feature chat was 4.4x its … (critical, 4.8 sigma)``
    and the link (with the real multiplication and sigma signs)."""
    z = alert.z
    sigma = "" if z is None else f", {abs(z):.1f}{SIGMA}"
    line = f"[Lectr] {alert.org_name}: {sentence(alert)} ({alert.severity}{sigma})"
    return f"{_slack_escape(' '.join(line.split()))} {alert.url}"


def payload(alert: Alert) -> dict[str, Any]:
    """The JSON body POSTed for ``alert``."""
    return {
        "text": text(alert),
        "anomaly": {
            "id": str(alert.id),
            "org_id": str(alert.org_id),
            "org_name": alert.org_name,
            "kind": alert.kind,
            "severity": alert.severity,
            "status": alert.status,
            "feature": alert.feature,
            "provider": alert.provider,
            "model": alert.model,
            "window_start": alert.window_start.isoformat(),
            "window_end": alert.window_end.isoformat(),
            "observed": alert.observed,
            "observed_text": value(alert.kind, alert.observed),
            "baseline": alert.baseline,
            "baseline_stddev": alert.baseline_stddev,
            "z": alert.z,
            "url": alert.url,
        },
    }


def display(url: str) -> str:
    """``https://hooks.slack.com/…``: enough to tell which endpoint, not its secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/…"


async def _post(session: aiohttp.ClientSession, url: str, alert: Alert) -> str | None:
    """None when ``url`` answered 2xx, else why not."""
    try:
        async with session.post(url, json=payload(alert), allow_redirects=False) as response:
            if 200 <= response.status < 300:
                return None
            return f"HTTP {response.status}"
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _post_each(
    session: aiohttp.ClientSession, url: str, alerts: Sequence[Alert], delivered: Delivered
) -> tuple[int, int]:
    for done, alert in enumerate(alerts):
        if (failure := await _post(session, url, alert)) is not None:
            log.warning(
                "webhook %s failed (%s): %d alerts not posted, retrying next run",
                display(url),
                failure,
                len(alerts) - done,
            )
            return done, len(alerts) - done
        await delivered(alert, url)
    return len(alerts), 0


async def post_all(
    alerts: Sequence[Alert], delivered: Delivered, *, timeout_s: float = TIMEOUT_S
) -> tuple[int, int]:
    """POST each alert to each of its pending ``webhooks``; returns (posted, failed).
    URLs are served concurrently, each URL's alerts one after another (oldest first).
    ``timeout_s`` bounds each POST. Raises only what ``delivered`` raises."""
    by_url: dict[str, list[Alert]] = {}
    for alert in alerts:
        for url in alert.webhooks:
            by_url.setdefault(url, []).append(alert)
    if not by_url:
        return 0, 0
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": "Lectr"}) as session:
        counts = await asyncio.gather(
            *(_post_each(session, url, queued, delivered) for url, queued in by_url.items())
        )
    return sum(posted for posted, _ in counts), sum(failed for _, failed in counts)
