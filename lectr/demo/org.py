"""The demo organisation: made or reused, a fresh key each run, and its removal."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from lectr import orgs

ORG_NAME = "demo"
KEY_NAME = "demo"
# The dashboard's p95 target line for the demo org (support-bot streams cross it).
P95_THRESHOLD_MS = 4000


@dataclass(frozen=True)
class DemoOrg:
    org_id: uuid.UUID
    key_id: uuid.UUID
    key: str
    created: bool
    revoked_keys: int


async def find(conn: asyncpg.Connection) -> uuid.UUID | None:
    return await conn.fetchval("SELECT id FROM organizations WHERE name = $1", ORG_NAME)


async def prepare(conn: asyncpg.Connection, *, pepper: str, alert_email: str | None) -> DemoOrg:
    """Make (or reuse) the active ``demo`` org with its p95 threshold and alert recipient,
    revoke the keys earlier runs issued and issue a new one, in one transaction."""
    async with conn.transaction():
        org_id = await find(conn)
        created = org_id is None
        revoked = 0
        if org_id is None:
            issued = await orgs.create_org(conn, ORG_NAME, pepper=pepper)
            await conn.execute(
                "UPDATE api_keys SET name = $2 WHERE id = $1", issued.key_id, KEY_NAME
            )
        else:
            rows = await conn.fetch(
                "UPDATE api_keys SET revoked_at = now() "
                "WHERE org_id = $1 AND name = $2 AND revoked_at IS NULL RETURNING id",
                org_id,
                KEY_NAME,
            )
            revoked = len(rows)
            issued = await orgs.create_key(conn, str(org_id), pepper=pepper, name=KEY_NAME)
        await conn.execute(
            """
            UPDATE organizations
            SET status = 'active', p95_latency_threshold_ms = $2, updated_at = now(),
                alert_recipients = CASE
                    WHEN $3::text IS NULL OR $3 = ANY(alert_recipients) THEN alert_recipients
                    ELSE array_append(alert_recipients, $3::text) END
            WHERE id = $1
            """,
            issued.org_id,
            P95_THRESHOLD_MS,
            alert_email,
        )
    return DemoOrg(issued.org_id, issued.key_id, issued.key, created, revoked)


async def stored_history(conn: asyncpg.Connection, org_id: uuid.UUID, instance: str) -> int:
    """How many of the org's request logs came from ``instance``."""
    return await conn.fetchval(
        "SELECT count(*) FROM request_logs WHERE org_id = $1 AND proxy_instance = $2",
        org_id,
        instance,
    )


async def stored_of(conn: asyncpg.Connection, org_id: uuid.UUID, event_ids: list[uuid.UUID]) -> int:
    """How many of ``event_ids`` the org's request logs hold."""
    return await conn.fetchval(
        "SELECT count(*) FROM request_logs WHERE org_id = $1 AND id = ANY($2::uuid[])",
        org_id,
        event_ids,
    )


async def purge(conn: asyncpg.Connection) -> tuple[uuid.UUID, dict[str, int]] | None:
    """Delete the demo org and all its data; None when there is none."""
    org_id = await find(conn)
    if org_id is None:
        return None
    removed = await orgs.delete_org(conn, org_id)
    return None if removed is None else (org_id, removed)
