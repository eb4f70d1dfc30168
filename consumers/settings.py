"""The consumer's own settings (``LECTR_CONSUMER_*``), read once at start-up.

The settings every process shares (database, broker, prefix, delivery limit) are in
:class:`lectr.settings.Settings`; these are the consumer's knobs only, plus
``LECTR_DEAD_RETENTION`` (how long a dead letter is kept), which only consumers use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from lectr.settings import EnvReader, SettingsError, positive_float, positive_int

_RETENTION_RE = re.compile(r"^([1-9][0-9]*)([Dhms]?)$")
_RETENTION_UNIT_S = {"D": 86_400, "h": 3_600, "m": 60, "s": 1, "": 3_600}
# RabbitMQ refuses a per-message expiration above 2^32 - 1 ms (about 49.7 days).
MAX_DEAD_RETENTION_S = (2**32 - 1) // 1000


def retention_s(value: str, variable: str) -> int:
    """``7D``, ``36h``, ``90m``, ``600s``, or a bare number of hours, in seconds."""
    match = _RETENTION_RE.match(value.strip())
    if match is None:
        raise SettingsError(
            variable, f"expected a number and a unit D, h, m or s (e.g. 7D), got {value!r}"
        )
    seconds = int(match.group(1)) * _RETENTION_UNIT_S[match.group(2)]
    if seconds > MAX_DEAD_RETENTION_S:
        raise SettingsError(variable, f"must be at most 49D (RabbitMQ's limit), got {value!r}")
    return seconds


@dataclass(frozen=True)
class ConsumerSettings:
    """How one consumer batches, retries and reports.

    ``batch_size``: events per insert; a batch is written once it holds this many.
    ``flush_interval_s``: a batch that is not full is written this long after its first
    event arrived. ``prefetch``: messages the broker may hand this consumer before it
    acks any (each message holds a batch of events from one proxy); this bounds every
    in-memory queue of the consumer. ``tokenise_threads``: threads counting tokens.
    ``retry_backoff_max_s``: the longest wait between two attempts to write to an
    unreachable database (waits start at 0.1 s and double). ``price_refresh_s``: how
    often the price table is re-read. ``health_interval_s``: how often the consumer
    writes its own row to ``pipeline_health``. ``shutdown_timeout_s``: on SIGTERM, how
    long to try to finish the current batch before giving up (what is not acked then
    is redelivered). ``delivery_limit``: a message delivered this many times without
    being acked is dead-lettered (sanitised) on its next delivery, before anything else
    is done with it (``LECTR_INGEST_DELIVERY_LIMIT``, a shared setting: ``main`` sets it).
    ``dead_retention_s``: how long RabbitMQ keeps each dead letter (its expiration).
    """

    batch_size: int = 100
    flush_interval_s: float = 5.0
    prefetch: int = 200
    tokenise_threads: int = 2
    writers: int = 2
    # Short, so a restored database is noticed within seconds.
    retry_backoff_max_s: float = 2.0
    price_refresh_s: float = 300.0
    health_interval_s: float = 30.0
    shutdown_timeout_s: float = 30.0
    delivery_limit: int = 5
    dead_retention_s: int = 7 * 86_400

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConsumerSettings:
        """Unset or empty variables take the default; a bad value raises
        :class:`lectr.settings.SettingsError` naming the variable."""
        read = EnvReader(environ).read
        d = cls()
        return cls(
            batch_size=read("LECTR_CONSUMER_BATCH_SIZE", d.batch_size, positive_int),
            flush_interval_s=read(
                "LECTR_CONSUMER_FLUSH_INTERVAL_S", d.flush_interval_s, positive_float
            ),
            prefetch=read("LECTR_CONSUMER_PREFETCH", d.prefetch, positive_int),
            tokenise_threads=read(
                "LECTR_CONSUMER_TOKENISE_THREADS", d.tokenise_threads, positive_int
            ),
            writers=read("LECTR_CONSUMER_WRITERS", d.writers, positive_int),
            retry_backoff_max_s=read(
                "LECTR_CONSUMER_RETRY_BACKOFF_MAX_S", d.retry_backoff_max_s, positive_float
            ),
            price_refresh_s=read(
                "LECTR_CONSUMER_PRICE_REFRESH_S", d.price_refresh_s, positive_float
            ),
            health_interval_s=read(
                "LECTR_CONSUMER_HEALTH_INTERVAL_S", d.health_interval_s, positive_float
            ),
            shutdown_timeout_s=read(
                "LECTR_CONSUMER_SHUTDOWN_TIMEOUT_S", d.shutdown_timeout_s, positive_float
            ),
            dead_retention_s=read("LECTR_DEAD_RETENTION", d.dead_retention_s, retention_s),
        )
