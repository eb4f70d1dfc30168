"""The shapes of the management API's bodies, declared once with pydantic v2.

Request models forbid unknown fields and are strict (a ``"5"`` is not a number), so
validation alone answers a bad body with the field at fault (see :mod:`api.body`); no
handler checks a field by hand. Response models use the column names of their tables;
they are lax, because they read database rows (``NUMERIC`` comes back as ``Decimal``).
The same models make the OpenAPI document (:mod:`api.openapi`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

OrgName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
PositiveLimit = Annotated[int, Field(gt=0, le=2_147_483_647)]


class RequestModel(BaseModel):
    """A request body or query: no unknown fields, no type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# Requests


class OrgCreate(RequestModel):
    name: OrgName


class OrgPatch(RequestModel):
    """What an operator decides about an org; a field left out is not changed, ``null``
    removes a limit."""

    status: Literal["active", "disabled"] = None  # type: ignore[assignment]
    rate_limit_rpm: PositiveLimit | None = None
    max_concurrent_streams: PositiveLimit | None = None


class SessionCreate(RequestModel):
    secret: str = Field(min_length=1, description="LECTR_ADMIN_SECRET")


class SummaryQuery(RequestModel):
    period: Literal["24h", "7d", "30d"] = "24h"


class AnomalyQuery(RequestModel):
    status: Literal["open", "resolved", "dismissed"] | None = None


class RecommendationQuery(RequestModel):
    status: Literal["open", "dismissed", "applied", "retired"] | None = None


# Responses


class ErrorDetail(ResponseModel):
    type: str
    code: str
    message: str
    field: str | None = None


class ErrorBody(ResponseModel):
    error: ErrorDetail


class Health(ResponseModel):
    status: Literal["ok"]
    database: bool = Field(description="whether the database answered")


class OidcConfig(ResponseModel):
    issuer: str
    client_id: str
    audience: str | None


class PublicConfig(ResponseModel):
    oidc: OidcConfig | None = Field(description="null when OIDC sign-in is not configured")
    operator_sign_in: bool
    proxy_url: str = Field(description="the proxy's address as clients reach it")
    version: str


class SessionInfo(ResponseModel):
    operator: Literal[True]
    csrf_token: str = Field(description="send it as X-CSRF-Token with every change")
    expires_at: datetime = Field(description="when the session ends unless renewed")


class SessionState(ResponseModel):
    session: SessionInfo | None = Field(description="null when the browser has no session cookie")


class MyOrg(ResponseModel):
    id: uuid.UUID
    name: str
    role: Literal["owner", "admin", "member", "viewer"]


class Me(ResponseModel):
    operator: bool
    email: str | None
    orgs: list[MyOrg]


class Org(ResponseModel):
    id: uuid.UUID
    name: str
    status: str
    p95_latency_threshold_ms: int
    rate_limit_rpm: int | None
    max_concurrent_streams: int | None
    alert_recipients: list[str]
    alert_webhooks: list[str]
    created_at: datetime
    updated_at: datetime


class OrgChanged(Org):
    proxies: str | None = Field(
        default=None,
        description="set when the running proxies could not be told: they pick the change "
        "up at their next full reload",
    )


class OrgDeleted(BaseModel):
    id: uuid.UUID
    deleted: bool
    proxies: str | None = Field(
        default=None,
        description="set when the running proxies could not be told: they pick the change "
        "up at their next full reload",
    )


class OrgCreated(Org):
    key: str = Field(description="the org's first API key; shown once, never again")
    key_id: uuid.UUID


class OrgList(ResponseModel):
    orgs: list[Org]


class Summary(ResponseModel):
    period: Literal["24h", "7d", "30d"]
    window_start: datetime | None
    window_end: datetime | None
    computed_at: datetime | None = Field(description="null until the aggregate job has run")
    data: dict[str, Any]


class Anomaly(ResponseModel):
    id: uuid.UUID
    org_id: uuid.UUID
    kind: str
    severity: str
    status: str
    feature: str | None
    provider: str | None
    model: str | None
    window_start: datetime
    window_end: datetime
    observed: float
    baseline: float | None
    baseline_stddev: float | None
    threshold: float | None
    details: dict[str, Any]
    detected_at: datetime
    notified_at: datetime | None
    resolved_at: datetime | None


class AnomalyList(ResponseModel):
    anomalies: list[Anomaly]


class Recommendation(ResponseModel):
    id: uuid.UUID
    org_id: uuid.UUID
    feature: str
    task_type: str | None
    provider: str
    current_model: str
    recommended_model: str
    steps: int
    window_start: datetime
    window_end: datetime
    request_count: int
    current_cost_usd: float
    projected_cost_usd: float
    projected_savings_usd: float
    rationale: str
    confidence: str
    details: dict[str, Any]
    status: str
    created_at: datetime
    updated_at: datetime


class RecommendationList(ResponseModel):
    recommendations: list[Recommendation]
