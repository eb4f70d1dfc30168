"""One ``audit_log`` row per change made through the API.

Handlers call :func:`record` on the connection and inside the transaction of the change
itself, so a change and its audit row are committed together or not at all. ``changes``
lists the changed fields (``{"field": {"old": ..., "new": ...}}`` or the values of a new
object); secrets and keys never go in.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson

from api.caller import Caller


async def record(
    conn: asyncpg.Connection,
    caller: Caller,
    *,
    org_id: uuid.UUID | None,
    action: str,
    object_type: str,
    object_id: uuid.UUID | str | None,
    changes: dict[str, Any],
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (org_id, actor, action, object_type, object_id, changes) "
        "VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
        org_id,
        caller.actor,
        action,
        object_type,
        None if object_id is None else str(object_id),
        orjson.dumps(changes, default=str).decode(),
    )


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``after`` whose value differs from ``before``."""
    return {
        name: {"old": before.get(name), "new": value}
        for name, value in after.items()
        if before.get(name) != value
    }
