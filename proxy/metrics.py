"""Prometheus metrics of one proxy process, served at ``/metrics``.

The request path only bumps plain integers (a dict entry, a histogram bucket); they
become Prometheus metrics when scraped, so counting costs next to nothing per request.
Counters that already live elsewhere (buffer depth, events published and dropped,
publish failures) are read at scrape time rather than counted twice.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

# Added latency is a fraction of a millisecond when all is well.
ADDED_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class Metrics:
    def __init__(
        self,
        *,
        buffer_depth: Callable[[], int],
        published: Callable[[], int],
        dropped: Callable[[], int],
        publish_failures: Callable[[], int],
    ) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.cache_reloads: dict[tuple[str, str], int] = {}
        # Counts per bucket of ADDED_BUCKETS, plus one for above the last bound.
        self._added = [0] * (len(ADDED_BUCKETS) + 1)
        self._added_sum = 0.0
        self._read_at_scrape = (
            (
                GaugeMetricFamily,
                "lectr_proxy_event_buffer_depth",
                "Events waiting to be published",
                buffer_depth,
            ),
            (
                CounterMetricFamily,
                "lectr_proxy_events_published",
                "Events confirmed by the broker",
                published,
            ),
            (
                CounterMetricFamily,
                "lectr_proxy_events_dropped",
                "Events dropped: buffer full",
                dropped,
            ),
            (
                CounterMetricFamily,
                "lectr_proxy_publish_failures",
                "Broker publish failures",
                publish_failures,
            ),
        )
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
        for family, name, doc, read in self._read_at_scrape:
            yield family(name, doc, value=read())

    def render(self) -> bytes:
        return generate_latest(self.registry)
