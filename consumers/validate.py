"""Checks that an event (or a health snapshot) can be stored before it is inserted.

The wire format allows some values Postgres cannot hold: a 40-character
``token_source`` where the column has 20, a token count above the integer range, a cost
above ``NUMERIC(18, 8)``, and text holding NUL (``\\x00``, which Postgres refuses in text)
or a lone surrogate (not UTF-8 at all, so it cannot even be sent). Such an event is
invalid: caught here, it is dead-lettered alone (see :mod:`consumers.dead`) instead of
failing the insert of a whole batch with other orgs' events.

:func:`storable` makes the copy that is dead-lettered: bad characters replaced with
U+FFFD and over-long text cut, so ``lectr dead retry`` can store it once an operator
decides to; the reason kept with it says what was wrong.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from schema.events import HealthSnapshot, RequestEvent
from schema.tables import pipeline_health, request_logs
from schema.text import storable as clean_text
from schema.text import text_problem

_INT_MAX = {sa.SmallInteger: 2**15 - 1, sa.Integer: 2**31 - 1, sa.BigInteger: 2**63 - 1}
# request_logs.cost_usd is NUMERIC(18, 8): at most 10 digits before the point.
_COST_LIMIT = Decimal(10) ** 10


def _limits(table: sa.Table) -> tuple[dict[str, int | None], dict[str, int]]:
    lengths: dict[str, int | None] = {}
    maxima: dict[str, int] = {}
    for column in table.columns:
        if isinstance(column.type, sa.String):
            lengths[column.name] = column.type.length
        elif type(column.type) in _INT_MAX:
            maxima[column.name] = _INT_MAX[type(column.type)]
    return lengths, maxima


_LENGTHS, _MAXIMA = _limits(request_logs)
_HEALTH_LENGTHS, _HEALTH_MAXIMA = _limits(pipeline_health)


def column_problem(event: RequestEvent) -> str | None:
    """Why ``event`` cannot be stored in ``request_logs``, or None when it can."""
    for name, length in _LENGTHS.items():
        value = getattr(event, name)
        if value is None:
            continue
        problem = text_problem(value)
        if problem is not None:
            return f"{name}: {problem}"
        if length is not None and len(value) > length:
            return f"{name}: longer than {length} characters"
    for name, maximum in _MAXIMA.items():
        value = getattr(event, name)
        if value is not None and value > maximum:
            return f"{name}: above {maximum}"
    if event.cost_usd is not None and event.cost_usd >= _COST_LIMIT:
        return f"cost_usd: {_COST_LIMIT} or more"
    return None


def storable(event: RequestEvent) -> RequestEvent:
    """A copy of ``event`` with its text fields made storable (see the module docstring);
    numbers out of range are left as they are."""
    changes: dict[str, str] = {}
    for name, length in _LENGTHS.items():
        value = getattr(event, name)
        if value is None:
            continue
        fixed = clean_text(value)[:length] if length else clean_text(value)
        if fixed != value:
            changes[name] = fixed
    return dataclasses.replace(event, **changes) if changes else event


def health_problem(snapshot: HealthSnapshot) -> str | None:
    """Why ``snapshot`` cannot be stored in ``pipeline_health``, or None."""
    for name in ("component", "instance"):
        value: str = getattr(snapshot, name)
        problem = text_problem(value)
        if problem is not None:
            return f"{name}: {problem}"
        length = _HEALTH_LENGTHS.get(name)
        if length is not None and len(value) > length:
            return f"{name}: longer than {length} characters"
    for name, maximum in _HEALTH_MAXIMA.items():
        number = getattr(snapshot, name, None)
        if number is not None and number > maximum:
            return f"{name}: above {maximum}"
    problem = _json_problem(snapshot.details)
    return None if problem is None else f"details: {problem}"


def _json_problem(value: Any) -> str | None:
    """NUL is refused in ``jsonb`` strings too (keys included)."""
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, dict):
        items: list[Any] = [*value.keys(), *value.values()]
        return next((p for p in map(_json_problem, items) if p is not None), None)
    if isinstance(value, list):
        return next((p for p in map(_json_problem, value) if p is not None), None)
    return None


def clean_json(value: Any) -> Any:
    """A JSON value (as decoded) with every string made storable (for dead letters)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    return value
