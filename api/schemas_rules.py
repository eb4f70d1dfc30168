"""The bodies of the routing-rule routes: rules, their order, and a draft's dry run.

A rule is the ``routing_rules`` row under its column names. Conditions (``match_*``)
left null match anything; a rule needs an action (``target_provider`` or
``target_model``), and providers are those the proxy knows
(:data:`schema.provider_names.PROVIDER_NAMES`), so a rule cannot name a provider the
proxy would ignore.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, ValidationInfo, field_validator

from api.schemas import RequestModel, ResponseModel
from schema.provider_names import PROVIDER_NAMES

ProviderName = Literal[PROVIDER_NAMES]  # type: ignore[valid-type]
RuleName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Feature = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Task = Annotated[str, StringConstraints(min_length=1, max_length=40)]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Priority = Annotated[int, Field(ge=0, le=2_147_483_647)]
_NEEDS_ACTION = "a rule needs target_provider or target_model"


class RuleCreate(RequestModel):
    """A new rule (or a draft to dry-run). ``priority`` left out puts it after every
    rule the org has; lower numbers run first."""

    name: RuleName
    priority: Priority | None = None
    enabled: bool = True
    match_feature: Feature | None = None
    match_task: Task | None = None
    match_provider: ProviderName | None = None
    match_model: ModelName | None = None
    target_provider: ProviderName | None = None
    target_model: ModelName | None = Field(
        default=None, validate_default=True, description=_NEEDS_ACTION
    )

    @field_validator("target_model")
    @classmethod
    def _has_action(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Checked on target_model (the last field) so the 400 names a field.
        if value is None and info.data.get("target_provider") is None:
            raise ValueError(_NEEDS_ACTION)
        return value


class RulePatch(RequestModel):
    """Fields to change; one left out is not changed, ``null`` on a condition makes it
    match anything. ``enabled`` turns the rule on or off."""

    name: RuleName = None  # type: ignore[assignment]
    priority: Priority = None  # type: ignore[assignment]
    enabled: bool = None  # type: ignore[assignment]
    match_feature: Feature | None = None
    match_task: Task | None = None
    match_provider: ProviderName | None = None
    match_model: ModelName | None = None
    target_provider: ProviderName | None = None
    target_model: ModelName | None = None

    @field_validator("name", "priority", "enabled", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null")
        return value

    def changes(self) -> dict[str, object]:
        return self.model_dump(include=self.model_fields_set)


class RuleOrder(RequestModel):
    """Every rule id of the org, once each, in the new priority order."""

    ids: list[Annotated[uuid.UUID, Field(strict=False)]]


class Rule(ResponseModel):
    id: uuid.UUID
    name: str
    priority: int
    enabled: bool
    match_feature: str | None
    match_task: str | None
    match_provider: str | None
    match_model: str | None
    target_provider: str | None
    target_model: str | None
    created_at: datetime
    updated_at: datetime


_PROXIES = Field(
    default=None,
    description="set when the running proxies could not be told: they pick the change "
    "up at their next full reload",
)


class RuleChanged(Rule):
    proxies: str | None = _PROXIES


class RuleList(ResponseModel):
    rules: list[Rule] = Field(description="in priority order, the order the proxy tries them")


class RulesReordered(RuleList):
    proxies: str | None = _PROXIES


class RuleDeleted(ResponseModel):
    id: uuid.UUID
    deleted: bool
    proxies: str | None = _PROXIES


class RuleDraft(RuleCreate):
    """A draft to dry-run: a new rule, or with ``replaces`` an edit of an existing one."""

    replaces: Annotated[uuid.UUID, Field(strict=False)] | None = Field(
        default=None,
        description="the id of the rule this draft edits: that rule is left out of the rules "
        "tried before the draft",
    )


class DryRunModel(ResponseModel):
    model: str = Field(description="the model the requests were sent for ('' when unknown)")
    requests: int
    cost_before_usd: float
    cost_after_usd: float
    unpriced_requests: int = Field(
        description="requests left out of both costs: the model they were sent for or the "
        "draft's target has no current price"
    )


class DryRun(ResponseModel):
    window_start: datetime
    window_end: datetime
    matched_requests: int
    cost_before_usd: float
    cost_after_usd: float
    by_model: list[DryRunModel]
