"""Settings, read from the environment in one place.

Every process builds one frozen :class:`Settings` at start-up with
:meth:`Settings.from_env`. A value that cannot be used raises :class:`SettingsError`
naming the variable, so a bad deployment fails before it serves anything.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import SplitResult, urlsplit

log = logging.getLogger(__name__)

T = TypeVar("T")

DEV_ADMIN_SECRET = "lectr-dev-admin-secret-change-me"
DEV_KEY_PEPPER = "lectr-dev-key-pepper-change-me"
MIN_SECRET_LENGTH = 16
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_MAX_AGE_RE = re.compile(r"^[1-9][0-9]*[YMDhms]$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(ValueError):
    """A setting has a value Lectr cannot use. The message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _url(value: str, variable: str, schemes: tuple[str, ...], shape: str) -> SplitResult:
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a non-numeric port
    except ValueError as exc:
        raise SettingsError(variable, f"not a valid URL ({exc})") from None
    if parts.scheme not in schemes:
        raise SettingsError(
            variable, f"expected {shape}, got scheme {parts.scheme!r} in {redact_url(value)!r}"
        )
    if not parts.hostname:
        raise SettingsError(variable, f"no host in {redact_url(value)!r}")
    return parts


def _database_url(value: str, variable: str) -> str:
    parts = _url(value, variable, ("postgresql", "postgres"), "postgresql://user@host:port/db")
    name = parts.path.strip("/")
    if not name or "/" in name:
        raise SettingsError(variable, f"no database name in {redact_url(value)!r}")
    return value


def _amqp_url(value: str, variable: str) -> str:
    _url(value, variable, ("amqp", "amqps"), "amqp://user:password@host:port/vhost")
    return value


def _port(value: str, variable: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise SettingsError(variable, f"expected a port number, got {value!r}") from None
    if not 1 <= port <= 65535:
        raise SettingsError(variable, f"port must be 1-65535, got {port}")
    return port


def _positive_int(value: str, variable: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(variable, f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise SettingsError(variable, f"must be at least 1, got {number}")
    return number


# Consumers dead-letter an ingest message delivered this many times; RabbitMQ 4.x drops
# a quorum-queue message at 20 deliveries (no dead-letter exchange), so stay well below.
MAX_DELIVERY_LIMIT = 15


def _delivery_limit(value: str, variable: str) -> int:
    number = _positive_int(value, variable)
    if number > MAX_DELIVERY_LIMIT:
        raise SettingsError(
            variable,
            f"must be at most {MAX_DELIVERY_LIMIT} (RabbitMQ 4.x drops a quorum-queue "
            f"message redelivered 20 times), got {number}",
        )
    return number


def _secret(value: str, variable: str) -> str:
    if len(value) < MIN_SECRET_LENGTH:
        raise SettingsError(
            variable, f"must be at least {MIN_SECRET_LENGTH} characters, got {len(value)}"
        )
    return value


def _broker_prefix(value: str, variable: str) -> str:
    if not _PREFIX_RE.match(value):
        raise SettingsError(
            variable, f"use letters, digits, '_', '.' or '-' (max 64), got {value!r}"
        )
    return value


def _max_age(value: str, variable: str) -> str:
    if not _MAX_AGE_RE.match(value):
        raise SettingsError(
            variable, f"expected a number and a unit Y, M, D, h, m or s (e.g. 7D), got {value!r}"
        )
    return value


def _log_level(value: str, variable: str) -> str:
    level = value.upper()
    if level not in _LOG_LEVELS:
        raise SettingsError(variable, f"expected one of {', '.join(_LOG_LEVELS)}, got {value!r}")
    return level


def _text(value: str, variable: str) -> str:
    if not value.strip():
        raise SettingsError(variable, "must not be empty")
    return value.strip()


# Parsers for the settings of process packages (proxy, consumers, ...), which read their
# own variables with the same rules and errors through an :class:`EnvReader`.
positive_int = _positive_int
text = _text
port = _port


def positive_float(value: str, variable: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(variable, f"expected a number, got {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise SettingsError(variable, f"must be a number above 0, got {value!r}")
    return number


def http_url(value: str, variable: str) -> str:
    _url(value, variable, ("http", "https"), "http(s)://host[:port][/path]")
    return value.rstrip("/")


def redis_url(value: str, variable: str) -> str:
    _url(value, variable, ("redis", "rediss"), "redis://[:password@]host[:port][/db]")
    return value


class EnvReader:
    """Reads variables from one mapping: unset or empty takes the default, a bad value
    raises :class:`SettingsError` naming the variable."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.env = os.environ if environ is None else environ

    def read(self, name: str, default: T, parse: Callable[[str, str], T]) -> T:
        raw = self.env.get(name, "")
        if raw == "":
            return default
        return parse(raw, name)


@dataclass(frozen=True)
class Settings:
    """Everything a Lectr process reads from its environment.

    Defaults work on a single development machine with local Postgres and RabbitMQ.
    ``LECTR_ADMIN_SECRET`` and ``LECTR_KEY_PEPPER`` have development defaults that
    log a warning when used; set both in production.
    """

    database_url: str = "postgresql://postgres@127.0.0.1:5432/lectr"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    admin_secret: str = DEV_ADMIN_SECRET
    key_pepper: str = DEV_KEY_PEPPER
    host: str = "127.0.0.1"
    proxy_port: int = 8080
    api_port: int = 8081
    # Where users open the dashboard: links in alert and invite emails start with it.
    dashboard_url: str = "http://127.0.0.1:8081"
    broker_prefix: str = "lectr"
    ingest_delivery_limit: int = 5
    replay_max_age: str = "7D"
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (``os.environ`` when omitted).

        Unset or empty variables take the default. Raises :class:`SettingsError`
        naming the first variable with a bad value.
        """
        read = EnvReader(environ).read
        defaults = cls()
        return cls(
            database_url=read("LECTR_DATABASE_URL", defaults.database_url, _database_url),
            amqp_url=read("LECTR_AMQP_URL", defaults.amqp_url, _amqp_url),
            admin_secret=read("LECTR_ADMIN_SECRET", defaults.admin_secret, _secret),
            key_pepper=read("LECTR_KEY_PEPPER", defaults.key_pepper, _secret),
            host=read("LECTR_HOST", defaults.host, _text),
            proxy_port=read("LECTR_PROXY_PORT", defaults.proxy_port, _port),
            api_port=read("LECTR_API_PORT", defaults.api_port, _port),
            dashboard_url=read("LECTR_DASHBOARD_URL", defaults.dashboard_url, http_url),
            broker_prefix=read("LECTR_BROKER_PREFIX", defaults.broker_prefix, _broker_prefix),
            ingest_delivery_limit=read(
                "LECTR_INGEST_DELIVERY_LIMIT", defaults.ingest_delivery_limit, _delivery_limit
            ),
            replay_max_age=read("LECTR_REPLAY_MAX_AGE", defaults.replay_max_age, _max_age),
            log_level=read("LECTR_LOG_LEVEL", defaults.log_level, _log_level),
        )

    def warn_about_dev_defaults(self, *, admin_secret: bool = True) -> None:
        """Log a warning for each secret still at its development default."""
        if admin_secret and self.admin_secret == DEV_ADMIN_SECRET:
            log.warning("LECTR_ADMIN_SECRET is the development default; set it in production")
        if self.key_pepper == DEV_KEY_PEPPER:
            log.warning(
                "LECTR_KEY_PEPPER is the development default; keys issued with it stop "
                "working once a production pepper is set"
            )
