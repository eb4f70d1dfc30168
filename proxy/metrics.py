"""Prometheus metrics of one proxy process, served at ``/metrics``.

The request path only bumps plain integers (a dict entry, a histogram bucket); they
become Prometheus metrics when scraped, so counting costs next to nothing per request.
Counters that already live elsewhere (the event pipeline's: buffer depth, events
published, dropped, unencodable and refused, publish failures) are read at scrape time
rather than counted twice.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

if TYPE_CHECKING:
    from proxy.shared_limits import SharedLimits

# Added latency is a fraction of a millisecond when all is well.
ADDED_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


# The event pipeline's counters, read at scrape time: counters key -> (name, help).
PIPELINE_GAUGES = {
    "buffer_depth": ("lectr_proxy_event_buffer_depth", "Events waiting to be published"),
    "buffer_bytes": ("lectr_proxy_event_buffer_bytes", "Estimated bytes of those events"),
    "spool_backlog": ("lectr_proxy_spool_backlog", "Spooled events not yet published"),
}
PIPELINE_COUNTERS = {
    "events_published": ("lectr_proxy_events_published", "Events confirmed by the broker"),
    "events_dropped": ("lectr_proxy_events_dropped", "Events dropped: buffer full"),
    "events_unencodable": ("lectr_proxy_events_unencodable", "Events dropped: not encodable"),
    "events_refused": ("lectr_proxy_events_refused", "Events dropped: refused by the broker"),
    "publish_failures": ("lectr_proxy_publish_failures", "Broker publish failures"),
}


class Metrics:
    def __init__(self, *, pipeline: Callable[[], Mapping[str, Any]]) -> None:
        """``pipeline`` returns the event pipeline's counters (see PIPELINE_GAUGES and
        PIPELINE_COUNTERS)."""
        self.requests: dict[tuple[str, int], int] = {}
        self.cache_reloads: dict[tuple[str, str], int] = {}
        # Counts per bucket of ADDED_BUCKETS, plus one for above the last bound.
        self._added = [0] * (len(ADDED_BUCKETS) + 1)
        self._added_sum = 0.0
        self._pipeline = pipeline
        # Set when limits are shared through Redis: its fallbacks are read at scrape time.
        self.shared_limits: SharedLimits | None = None
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def request(self, provider: str, status: int, added_latency_s: float | None) -> None:
        """Count one request; its added latency when it reached a provider."""
        key = (provider, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        if added_latency_s is not None:
            self._added[bisect.bisect_left(ADDED_BUCKETS, added_latency_s)] += 1
            self._added_sum += added_latency_s

    def cache_reloaded(self, cache: str, ok: bool) -> None:
        key = (cache, "ok" if ok else "failed")
        self.cache_reloads[key] = self.cache_reloads.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "lectr_proxy_requests",
            "Requests handled, by provider and response status",
            labels=("provider", "status"),
        )
        for (provider, status), count in sorted(self.requests.items()):
            requests.add_metric((provider, str(status)), count)
        yield requests
        reloads = CounterMetricFamily(
            "lectr_proxy_cache_reloads",
            "Cache reloads, by cache and outcome",
            labels=("cache", "outcome"),
        )
        for labels, count in sorted(self.cache_reloads.items()):
            reloads.add_metric(labels, count)
        yield reloads
        cumulative, buckets = 0, []
        for bound, count in zip((*ADDED_BUCKETS, float("inf")), self._added, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(
            "lectr_proxy_added_latency_seconds",
            "Time spent in the proxy itself (total minus waiting on the provider)",
            buckets=buckets,
            sum_value=self._added_sum,
        )
        counters = self._pipeline()
        for key, (name, doc) in PIPELINE_GAUGES.items():
            yield GaugeMetricFamily(name, doc, value=counters[key])
        for key, (name, doc) in PIPELINE_COUNTERS.items():
            yield CounterMetricFamily(name, doc, value=counters[key])
        if self.shared_limits is not None:
            yield from _shared_limits(self.shared_limits)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _shared_limits(shared: SharedLimits) -> Iterator[Metric]:
    fallbacks = CounterMetricFamily(
        "lectr_proxy_redis_fallbacks",
        "Limit checks counted by this proxy alone: Redis unavailable or slower than "
        "LECTR_REDIS_TIMEOUT_MS",
        labels=("check",),
    )
    for check, count in sorted(shared.fallbacks.items()):
        fallbacks.add_metric((check,), count)
    yield fallbacks
    yield GaugeMetricFamily(
        "lectr_proxy_redis_available",
        "1 while limit checks go to Redis, 0 while they fall back",
        value=1 if shared.available else 0,
    )
