"""Prometheus metrics of one proxy process, served at ``/metrics``.

Counters that already live elsewhere (buffer depth, events published and dropped,
publish failures) are read when scraped rather than counted twice.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Added latency is a fraction of a millisecond when all is well.
_ADDED_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class Metrics:
    def __init__(
        self,
        *,
        buffer_depth: Callable[[], int],
        published: Callable[[], int],
        dropped: Callable[[], int],
        publish_failures: Callable[[], int],
    ) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "lectr_proxy_requests",
            "Requests handled, by provider and response status",
            ("provider", "status"),
            registry=self.registry,
        )
        self.added_latency = Histogram(
            "lectr_proxy_added_latency_seconds",
            "Time spent in the proxy itself (total minus waiting on the provider)",
            buckets=_ADDED_BUCKETS,
            registry=self.registry,
        )
        self.cache_reloads = Counter(
            "lectr_proxy_cache_reloads",
            "Cache reloads, by cache and outcome",
            ("cache", "outcome"),
            registry=self.registry,
        )
        for name, doc, read in (
            ("lectr_proxy_event_buffer_depth", "Events waiting to be published", buffer_depth),
            ("lectr_proxy_events_published_total", "Events confirmed by the broker", published),
            ("lectr_proxy_events_dropped_total", "Events dropped: buffer full", dropped),
            ("lectr_proxy_publish_failures_total", "Broker publish failures", publish_failures),
        ):
            Gauge(name, doc, registry=self.registry).set_function(read)

    def cache_reloaded(self, cache: str, ok: bool) -> None:
        self.cache_reloads.labels(cache, "ok" if ok else "failed").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
