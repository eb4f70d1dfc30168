"""Checks that an event fits its ``request_logs`` columns before it is inserted.

The wire format allows some values the table cannot hold (a 40-character
``token_source`` where the column has 20, a token count above the integer range). Such
an event is invalid: caught here it is dropped and counted alone, instead of failing
the insert of the whole batch.
"""

from __future__ import annotations

import sqlalchemy as sa

from schema.events import RequestEvent
from schema.tables import request_logs

_INT_MAX = {sa.SmallInteger: 2**15 - 1, sa.Integer: 2**31 - 1, sa.BigInteger: 2**63 - 1}


def _limits() -> tuple[dict[str, int], dict[str, int]]:
    lengths: dict[str, int] = {}
    maxima: dict[str, int] = {}
    for column in request_logs.columns:
        if isinstance(column.type, sa.String) and column.type.length:
            lengths[column.name] = column.type.length
        elif type(column.type) in _INT_MAX:
            maxima[column.name] = _INT_MAX[type(column.type)]
    return lengths, maxima


_LENGTHS, _MAXIMA = _limits()


def column_problem(event: RequestEvent) -> str | None:
    """Why ``event`` does not fit ``request_logs``, or None when it does."""
    for name, length in _LENGTHS.items():
        value = getattr(event, name)
        if value is not None and len(value) > length:
            return f"{name}: longer than {length} characters"
    for name, maximum in _MAXIMA.items():
        value = getattr(event, name)
        if value is not None and value > maximum:
            return f"{name}: above {maximum}"
    return None
