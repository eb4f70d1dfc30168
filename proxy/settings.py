"""The proxy's own settings, read from the environment once at start.

Shared settings (database, broker, port, host) come from :class:`lectr.settings.Settings`;
these are the proxy's limits, timeouts, buffer sizes and upstream base URLs.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from lectr.settings import (
    EnvReader,
    SettingsError,
    http_url,
    positive_float,
    positive_int,
    redis_url,
    text,
)
from proxy.providers import PROVIDERS

MIB = 1024 * 1024
ACCESS_LOG_MODES = ("off", "errors", "all")


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


def _access_log_mode(value: str, variable: str) -> str:
    mode = value.strip().lower()
    if mode not in ACCESS_LOG_MODES:
        choices = ", ".join(ACCESS_LOG_MODES)
        raise SettingsError(variable, f"expected one of {choices}, got {value!r}")
    return mode


def base_url_variable(provider: str) -> str:
    return f"LECTR_{provider.upper()}_BASE_URL"


def default_spool_dir(environ: Mapping[str, str]) -> str:
    """``$XDG_STATE_HOME/lectr/spool``, else ``~/.local/state/lectr/spool``: one place per
    user whatever the working directory, so a restarted proxy finds what it spooled."""
    state = environ.get("XDG_STATE_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(state, "lectr", "spool")


@dataclass(frozen=True)
class ProxySettings:
    # Largest request body accepted; larger → 413 payload_too_large.
    max_body_bytes: int = 2 * MIB
    # Events waiting for the publisher, in number and in (estimated encoded) bytes; when
    # either is reached, new events are dropped and counted.
    buffer_size: int = 10_000
    buffer_bytes: int = 64 * MIB
    # Events and bytes per broker message (well under RabbitMQ's largest message), and
    # how long the publisher waits to fill one.
    publish_batch_size: int = 500
    publish_batch_bytes: int = 4 * MIB
    publish_interval_s: float = 0.005
    # Bytes of token-counting text (prompt + completion, encoded) one event may carry:
    # over it the completion is cut or, when the prompt alone is over, the text dropped.
    text_cap_bytes: int = MIB
    # Upstream timeouts: to connect, and between two reads of the response.
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 300.0
    # Client side (proxy.connections): time to send the complete headers, and longest
    # pause in a request body (then 408 and the connection is closed); open connections
    # over the cap are answered 503 and closed.
    client_timeout_s: float = 30.0
    max_connections: int = 10_000
    # How long an idle keep-alive connection stays open between two requests (above a
    # load balancer's own idle timeout, 60 s on most, so it is the one that closes).
    keepalive_s: float = 75.0
    # One log line per request (proxy.access_log): off, errors (status >= 400 or an
    # error category) or all.
    access_log: str = "errors"
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
    # How long the broker is waited for: at start-up before serving anyway (events wait
    # in the buffer until it is reachable), and at shutdown to publish the buffer before
    # spooling what is left.
    broker_wait_s: float = 5.0
    # Where events that cannot reach the broker at shutdown are kept for the next start,
    # and the most that directory may hold. None: no spool (from_env always sets one).
    spool_dir: str | None = None
    spool_max_bytes: int = 64 * MIB
    # Redis shared by every proxy for the organisations' limits (None: each proxy
    # counts alone); the longest a check waits for it before counting locally; how
    # long an open stream's slot outlives its proxy's last renewal.
    redis_url: str | None = None
    redis_timeout_ms: float = 5.0
    redis_lease_s: float = 30.0
    # Provider name -> upstream base URL override.
    base_urls: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProxySettings:
        reader = EnvReader(environ)
        read = reader.read
        d = cls()
        # LECTR_PROXY_STREAM_TEXT_CAP is the older name, read when the new one is unset.
        old_cap = read("LECTR_PROXY_STREAM_TEXT_CAP", d.text_cap_bytes, positive_int)
        text_cap = read("LECTR_PROXY_TEXT_CAP_BYTES", old_cap, positive_int)
        return cls(
            max_body_bytes=read("LECTR_PROXY_MAX_BODY_BYTES", d.max_body_bytes, positive_int),
            buffer_size=read("LECTR_PROXY_BUFFER_SIZE", d.buffer_size, positive_int),
            buffer_bytes=read("LECTR_PROXY_BUFFER_BYTES", d.buffer_bytes, positive_int),
            publish_batch_size=read(
                "LECTR_PROXY_PUBLISH_BATCH_SIZE", d.publish_batch_size, positive_int
            ),
            publish_batch_bytes=read(
                "LECTR_PROXY_PUBLISH_BATCH_BYTES", d.publish_batch_bytes, positive_int
            ),
            publish_interval_s=read(
                "LECTR_PROXY_PUBLISH_INTERVAL_S", d.publish_interval_s, positive_float
            ),
            connect_timeout_s=read(
                "LECTR_UPSTREAM_CONNECT_TIMEOUT_S", d.connect_timeout_s, positive_float
            ),
            read_timeout_s=read("LECTR_UPSTREAM_READ_TIMEOUT_S", d.read_timeout_s, positive_float),
            client_timeout_s=read(
                "LECTR_PROXY_CLIENT_TIMEOUT_S", d.client_timeout_s, positive_float
            ),
            max_connections=read("LECTR_PROXY_MAX_CONNECTIONS", d.max_connections, positive_int),
            keepalive_s=read("LECTR_PROXY_KEEPALIVE_S", d.keepalive_s, positive_float),
            access_log=read("LECTR_PROXY_ACCESS_LOG", d.access_log, _access_log_mode),
            # A stream's text is kept up to as many characters as the cap has bytes.
            stream_text_cap=text_cap,
            text_cap_bytes=text_cap,
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
            broker_wait_s=read("LECTR_PROXY_BROKER_WAIT_S", d.broker_wait_s, positive_float),
            spool_dir=read("LECTR_PROXY_SPOOL_DIR", default_spool_dir(reader.env), text),
            spool_max_bytes=read("LECTR_PROXY_SPOOL_MAX_BYTES", d.spool_max_bytes, positive_int),
            redis_url=read("LECTR_REDIS_URL", d.redis_url, redis_url),
            redis_timeout_ms=read("LECTR_REDIS_TIMEOUT_MS", d.redis_timeout_ms, positive_float),
            redis_lease_s=read("LECTR_REDIS_LEASE_S", d.redis_lease_s, positive_float),
            base_urls={
                name: url
                for name in PROVIDERS
                if (url := read(base_url_variable(name), "", http_url))
            },
        )
