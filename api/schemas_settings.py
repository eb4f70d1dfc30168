"""Bodies and answers of an org's keys, settings, Azure config, pipeline and audit routes.

Every check of a value is declared here (pydantic v2), so a bad body is a 400 naming the
field without a hand-written check in a handler. Webhook URLs get an SSRF guard: only
``https://``, no user:password in the URL, and no host that is an IP literal outside the
public address space (private, loopback, link-local, reserved, multicast) or that the
resolver would read as one (``127.1``, ``0x7f000001``), nor ``localhost``. A host name
that later resolves to a private address is not caught here (that needs the delivering
side to check the address it connects to).
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StringConstraints, WithJsonSchema

from api.schemas import OrgName, RequestModel, ResponseModel

_PROXIES = Field(
    default=None,
    description="set when the running proxies could not be told: they pick the change up "
    "at their next full reload",
)

# Keys


class KeyCreate(RequestModel):
    name: OrgName | None = None


class Key(ResponseModel):
    id: uuid.UUID
    display_prefix: str = Field(description="the key's first characters, to tell keys apart")
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(Key):
    key: str = Field(description="the raw key; shown once, never again")
    proxies: str | None = _PROXIES


class KeyRevoked(Key):
    proxies: str | None = _PROXIES


class KeyList(ResponseModel):
    keys: list[Key]


# Settings

_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
# A last label the resolver reads as a number (``127.1``, ``2130706433``, ``0x7f000001``).
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)


def _email(value: str) -> str:
    value = value.strip()
    if len(value) > 320 or not _EMAIL.match(value):
        raise ValueError("not an email address")
    return value


def _is_public_ip(host: str) -> bool | None:
    """Whether ``host`` is a public IP address; None when it is not an IP literal."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def https_host(url: str) -> str:
    """The lower-case host of an ``https://`` URL without user info, or ValueError."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError("not a URL") from None
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user name or password before the host")
    return parts.hostname.lower().rstrip(".")


def _webhook(value: str) -> str:
    host = https_host(value)
    public = _is_public_ip(host)
    if public is False:
        raise ValueError("must not point at a private, loopback or link-local address")
    if public is None:
        if host == "localhost" or host.endswith(".localhost"):
            raise ValueError("must not point at localhost")
        if _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
            raise ValueError("must not point at a numeric host")
    return value


def _endpoint(value: str) -> str:
    """An https URL with no query or fragment, without its trailing slash (the host's
    suffix is checked against the API's settings by the handler)."""
    https_host(value)
    parts = urlsplit(value)
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query or fragment")
    return value.rstrip("/")


def _https(max_length: int) -> WithJsonSchema:
    """What the document says of an https URL (the validators check more, with clearer
    messages than a pattern's)."""
    return WithJsonSchema(
        {"type": "string", "format": "uri", "pattern": "^https://", "maxLength": max_length}
    )


Email = Annotated[
    str,
    StringConstraints(max_length=320),
    AfterValidator(_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 320}),
]
WebhookUrl = Annotated[
    str,
    StringConstraints(max_length=2000),
    AfterValidator(_webhook),
    _https(2000),
]


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


Recipients = Annotated[list[Email], Field(max_length=50), AfterValidator(_unique)]
Webhooks = Annotated[
    list[WebhookUrl],
    Field(max_length=20, description="https URLs on public hosts"),
    AfterValidator(_unique),
]
Threshold = Annotated[int, Field(gt=0, le=3_600_000)]


class SettingsPatch(RequestModel):
    """What an org admin decides; a field left out is not changed (``[]`` empties a list)."""

    name: OrgName = None  # type: ignore[assignment]
    p95_latency_threshold_ms: Threshold = None  # type: ignore[assignment]
    alert_recipients: Recipients = None  # type: ignore[assignment]
    alert_webhooks: Webhooks = None  # type: ignore[assignment]


class OrgSettings(ResponseModel):
    id: uuid.UUID
    name: str
    p95_latency_threshold_ms: int
    alert_recipients: list[str]
    alert_webhooks: list[str]
    rate_limit_rpm: int | None = Field(
        description="requests per minute per proxy process (null: unlimited); set by an "
        "operator (PATCH /api/orgs/{org})"
    )
    max_concurrent_streams: int | None = Field(
        description="open streams per proxy process (null: unlimited); set by an operator"
    )
    azure_configured: bool = Field(
        description="whether GET .../providers/azure has a configuration (else it is 404)"
    )


# Azure

ApiVersion = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,40}$")]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# What Azure allows in a deployment name; also a safe path segment for the proxy.
DeploymentName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


class AzureConfigPut(RequestModel):
    """The whole Azure OpenAI configuration of the org (a PUT replaces it)."""

    endpoint: Annotated[
        str,
        StringConstraints(max_length=500),
        AfterValidator(_endpoint),
        _https(500),
        Field(description="https://<resource>.openai.azure.com"),
    ]
    api_version: ApiVersion = Field(description="e.g. 2024-10-21")
    deployments: Annotated[
        dict[ModelName, DeploymentName],
        Field(max_length=200, description="model name -> deployment name"),
    ] = Field(default_factory=dict)


class AzureConfig(ResponseModel):
    endpoint: str | None
    api_version: str | None
    deployments: dict[str, str]
    updated_at: datetime


class AzureConfigChanged(AzureConfig):
    proxies: str | None = _PROXIES


# Pipeline


class ProxyPipeline(ResponseModel):
    instance: str
    recorded_at: datetime
    buffer_depth: int | None
    events_published: int | None = Field(description="since the process started")
    events_dropped: int | None = Field(description="since the process started")
    publish_failures: int | None
    drop_rate: float = Field(description="dropped / (published + dropped), 0 when none")


class ConsumerPipeline(ResponseModel):
    instance: str
    recorded_at: datetime
    ingest_lag_ms: float | None = Field(description="null when the consumer was idle")


class Pipeline(ResponseModel):
    proxies: list[ProxyPipeline] = Field(description="instances with a snapshot in the last hour")
    consumers: list[ConsumerPipeline]
    ingest_lag_ms: float | None = Field(description="the largest of the consumers' lags")


# Audit


class AuditQuery(RequestModel):
    limit: Annotated[int, Field(strict=False, ge=1, le=200)] = 50
    cursor: str | None = Field(default=None, description="next_cursor of the previous page")


class AuditEntry(ResponseModel):
    id: uuid.UUID
    actor: str
    action: str
    object_type: str
    object_id: str | None
    changes: dict[str, Any]
    created_at: datetime


class AuditPage(ResponseModel):
    entries: list[AuditEntry]
    next_cursor: str | None = Field(description="null on the last page")
