"""The proxy's own settings, read from the environment once at start.

Shared settings (database, broker, port, host) come from :class:`lectr.settings.Settings`;
these are the proxy's limits, timeouts, buffer sizes and upstream base URLs.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from lectr.settings import EnvReader, SettingsError, http_url, positive_float, positive_int, text
from proxy.providers import PROVIDERS

MIB = 1024 * 1024


def _provider(value: str, variable: str) -> str:
    name = value.strip().lower()
    if name not in PROVIDERS or name == "azure":
        choices = ", ".join(sorted(p for p in PROVIDERS if p != "azure"))
        raise SettingsError(variable, f"expected one of {choices}, got {value!r}")
    return name


def _on_off(value: str, variable: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "on", "yes"):
        return True
    if lowered in ("0", "false", "off", "no"):
        return False
    raise SettingsError(variable, f"expected on or off, got {value!r}")


def base_url_variable(provider: str) -> str:
    return f"LECTR_{provider.upper()}_BASE_URL"


@dataclass(frozen=True)
class ProxySettings:
    # Largest request body accepted; larger → 413 request_too_large.
    max_body_bytes: int = 2 * MIB
    # Events waiting for the publisher; when full, new events are dropped and counted.
    buffer_size: int = 10_000
    # Events per broker message, and how long the publisher waits to fill one.
    publish_batch_size: int = 500
    publish_interval_s: float = 0.005
    # Upstream timeouts: to connect, and between two reads of the response.
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 300.0
    # Characters of streamed completion text kept for token counting when a provider
    # reports no usage.
    stream_text_cap: int = MIB
    # Full cache reload period (catches control messages missed during an outage).
    cache_reload_s: float = 60.0
    # How often pipeline health counters are published.
    health_interval_s: float = 10.0
    # How long shutdown waits for in-flight requests (streams too) to finish.
    shutdown_timeout_s: float = 20.0
    # Provider used when neither the header nor the model name names one.
    default_provider: str = "openai"
    workers: int = 1
    # Record an event per request (turn off only to measure the proxy without it).
    record_events: bool = True
    instance: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    # How long start-up waits for the broker before serving anyway (events wait in the
    # buffer until it is reachable). Not read from the environment.
    broker_wait_s: float = 5.0
    # Provider name -> upstream base URL override.
    base_urls: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProxySettings:
        reader = EnvReader(environ)
        read = reader.read
        d = cls()
        return cls(
            max_body_bytes=read("LECTR_PROXY_MAX_BODY_BYTES", d.max_body_bytes, positive_int),
            buffer_size=read("LECTR_PROXY_BUFFER_SIZE", d.buffer_size, positive_int),
            publish_batch_size=read(
                "LECTR_PROXY_PUBLISH_BATCH_SIZE", d.publish_batch_size, positive_int
            ),
            publish_interval_s=read(
                "LECTR_PROXY_PUBLISH_INTERVAL_S", d.publish_interval_s, positive_float
            ),
            connect_timeout_s=read(
                "LECTR_UPSTREAM_CONNECT_TIMEOUT_S", d.connect_timeout_s, positive_float
            ),
            read_timeout_s=read("LECTR_UPSTREAM_READ_TIMEOUT_S", d.read_timeout_s, positive_float),
            stream_text_cap=read("LECTR_PROXY_STREAM_TEXT_CAP", d.stream_text_cap, positive_int),
            cache_reload_s=read("LECTR_PROXY_CACHE_RELOAD_S", d.cache_reload_s, positive_float),
            health_interval_s=read(
                "LECTR_PROXY_HEALTH_INTERVAL_S", d.health_interval_s, positive_float
            ),
            shutdown_timeout_s=read(
                "LECTR_PROXY_SHUTDOWN_TIMEOUT_S", d.shutdown_timeout_s, positive_float
            ),
            default_provider=read("LECTR_DEFAULT_PROVIDER", d.default_provider, _provider),
            workers=read("LECTR_PROXY_WORKERS", d.workers, positive_int),
            record_events=read("LECTR_PROXY_RECORD_EVENTS", d.record_events, _on_off),
            instance=read("LECTR_INSTANCE_NAME", d.instance, text),
            base_urls={
                name: url
                for name in PROVIDERS
                if (url := read(base_url_variable(name), "", http_url))
            },
        )
