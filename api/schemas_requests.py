"""Query strings and rows of the request log reads (``/requests`` and ``/failures``).

Query models forbid unknown parameters but are lax about types, since every query value
arrives as a string (``limit=50``, ``streaming=true``). ``since`` and ``until`` must carry
an offset (``Z`` or ``+02:00``); a ``+`` sent unescaped in a query string arrives as a
space, which is put back so ``2026-01-01T00:00:00 00:00`` still means UTC. An instant
must be in UTC's years 1 to 9999 (what Python and the database driver can represent).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)

from api.schemas import ResponseModel

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_SPACED_OFFSET = re.compile(r" (\d\d(?::?\d\d)?)$")


def _unescaped_plus(value: object) -> object:
    if isinstance(value, str):
        return _SPACED_OFFSET.sub(r"+\1", value.strip()) if "T" in value else value
    return value


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range in UTC (years 1 to 9999)") from None


Instant = Annotated[AwareDatetime, BeforeValidator(_unescaped_plus), AfterValidator(_in_utc)]
Label = Annotated[str, Field(min_length=1, max_length=200)]


class FailureQuery(BaseModel):
    """Paging and filters of ``/failures`` (errors only, so no ``status``)."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="rows per page")
    cursor: str | None = Field(
        None, max_length=200, description="next_cursor of the previous page (opaque)"
    )
    since: Instant | None = Field(
        None, description="created_at >= since; default 30 days before until (or now)"
    )
    until: Instant | None = Field(None, description="created_at < until; default now")
    feature: Label | None = None
    model: Label | None = Field(
        None, description="matches requested_model, actual_model or response_model"
    )
    provider: Label | None = None
    task: Label | None = Field(None, description="matches task_type")
    streaming: bool | None = None


class RequestQuery(FailureQuery):
    status: Literal["2xx", "4xx", "5xx", "error"] | None = Field(
        None,
        description="error: status_code >= 400, or 0 (no response), or an error_category",
    )


class RequestLog(ResponseModel):
    """One ``request_logs`` row: metadata only, never prompts, answers or keys."""

    id: uuid.UUID
    created_at: datetime
    completed_at: datetime
    org_id: uuid.UUID
    api_key_id: uuid.UUID
    provider: str
    provider_unknown: bool
    requested_model: str | None
    actual_model: str | None
    response_model: str | None
    endpoint: str
    streaming: bool
    status_code: int
    error_category: str | None
    error_source: str | None
    latency_ms: float
    ttfb_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    token_source: str | None
    cost_usd: float | None = Field(description="null when the model has no known price")
    feature: str
    task_type: str | None
    rule_id: uuid.UUID | None
    skipped_rule_id: uuid.UUID | None
    proxy_instance: str


class RequestPage(ResponseModel):
    requests: list[RequestLog]
    next_cursor: str | None = Field(description="null on the last page")


class FailurePage(ResponseModel):
    failures: list[RequestLog]
    next_cursor: str | None = Field(description="null on the last page")
