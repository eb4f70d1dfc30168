"""Organisations and their API keys: what ``lectr org`` and ``lectr key`` do.

Each function takes an open asyncpg connection and runs in one transaction, so a
failure leaves nothing half-made. Raw keys are returned to the caller once and
never stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from lectr.keys import display_prefix, generate_key, hash_key
from schema.constants import ORG_STATUSES


class OrgError(Exception):
    """A request about an organisation that cannot be carried out (message is for users)."""


@dataclass(frozen=True)
class IssuedKey:
    org_id: uuid.UUID
    org_name: str
    key_id: uuid.UUID
    key: str
    revoked_keys: int = 0


@dataclass(frozen=True)
class KeySummary:
    id: uuid.UUID
    display_prefix: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class OrgSummary:
    id: uuid.UUID
    name: str
    status: str
    active_keys: int
    created_at: datetime


async def _insert_key(
    conn: asyncpg.Connection, org_id: uuid.UUID, pepper: str, name: str | None = None
) -> tuple[uuid.UUID, str]:
    raw = generate_key()
    key_id = await conn.fetchval(
        "INSERT INTO api_keys (org_id, key_hash, display_prefix, name) "
        "VALUES ($1, $2, $3, $4) RETURNING id",
        org_id,
        hash_key(raw, pepper),
        display_prefix(raw),
        name,
    )
    return key_id, raw


async def create_org(conn: asyncpg.Connection, name: str, *, pepper: str) -> IssuedKey:
    """Create an active organisation with one API key."""
    name = name.strip()
    if not name or len(name) > 200:
        raise OrgError("an organisation name must be 1-200 characters")
    async with conn.transaction():
        try:
            org_id = await conn.fetchval(
                "INSERT INTO organizations (name) VALUES ($1) RETURNING id", name
            )
        except asyncpg.UniqueViolationError:
            raise OrgError(f"an organisation named {name!r} already exists") from None
        key_id, raw = await _insert_key(conn, org_id, pepper)
    return IssuedKey(org_id=org_id, org_name=name, key_id=key_id, key=raw)


async def find_org(conn: asyncpg.Connection, ref: str) -> asyncpg.Record:
    """The organisation whose id or name is ``ref``."""
    try:
        org_id = uuid.UUID(ref)
    except ValueError:
        row = await conn.fetchrow("SELECT id, name FROM organizations WHERE name = $1", ref)
    else:
        row = await conn.fetchrow("SELECT id, name FROM organizations WHERE id = $1", org_id)
    if row is None:
        raise OrgError(f"no organisation with id or name {ref!r}")
    return row


async def set_status(conn: asyncpg.Connection, ref: str, status: str) -> uuid.UUID:
    """Enable (``active``) or disable (``disabled``) an organisation; returns its id."""
    if status not in ORG_STATUSES:
        raise OrgError(f"status must be one of {', '.join(ORG_STATUSES)}")
    async with conn.transaction():
        org = await find_org(conn, ref)
        await conn.execute(
            "UPDATE organizations SET status = $2, updated_at = now() WHERE id = $1",
            org["id"],
            status,
        )
    return org["id"]


LIMITS = ("rate_limit_rpm", "max_concurrent_streams")


async def set_limits(conn: asyncpg.Connection, org_id: uuid.UUID, **limits: int | None) -> None:
    """Set an organisation's per-proxy limits (``rate_limit_rpm``,
    ``max_concurrent_streams``; None is unlimited). Only the named ones change."""
    unknown = set(limits) - set(LIMITS)
    if unknown:
        raise OrgError(f"not a limit: {', '.join(sorted(unknown))}")
    if not limits:
        return
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(limits, start=2))
    await conn.execute(
        f"UPDATE organizations SET {sets}, updated_at = now() WHERE id = $1",
        org_id,
        *limits.values(),
    )


async def create_key(
    conn: asyncpg.Connection, ref: str, *, pepper: str, name: str | None = None
) -> IssuedKey:
    """Issue one more key for the organisation; its other keys keep working."""
    if name is not None and not 1 <= len(name) <= 200:
        raise OrgError("a key name must be 1-200 characters")
    async with conn.transaction():
        org = await find_org(conn, ref)
        key_id, raw = await _insert_key(conn, org["id"], pepper, name)
    return IssuedKey(org_id=org["id"], org_name=org["name"], key_id=key_id, key=raw)


async def revoke_key(conn: asyncpg.Connection, key_id: str) -> uuid.UUID:
    """Revoke one key now; returns the id of its organisation."""
    try:
        parsed = uuid.UUID(key_id)
    except ValueError:
        raise OrgError(f"{key_id!r} is not a key id") from None
    row = await conn.fetchrow(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 "
        "RETURNING org_id",
        parsed,
    )
    if row is None:
        raise OrgError(f"no key with id {key_id!r}")
    return row["org_id"]


async def revoke_org_key(
    conn: asyncpg.Connection, org_id: uuid.UUID, key_id: uuid.UUID
) -> tuple[KeySummary, bool] | None:
    """Revoke one of the organisation's keys now. None when the organisation has no such
    key (another org's key included); else the key and whether this call revoked it
    (False: it already was, and keeps its first ``revoked_at``)."""
    columns = "id, display_prefix, name, created_at, revoked_at"
    async with conn.transaction():
        row = await conn.fetchrow(
            f"SELECT {columns} FROM api_keys WHERE id = $1 AND org_id = $2 FOR UPDATE",
            key_id,
            org_id,
        )
        if row is None:
            return None
        if row["revoked_at"] is not None:
            return KeySummary(**dict(row)), False
        row = await conn.fetchrow(
            f"UPDATE api_keys SET revoked_at = now() WHERE id = $1 RETURNING {columns}", key_id
        )
    return KeySummary(**dict(row)), True


async def list_keys(conn: asyncpg.Connection, ref: str) -> list[KeySummary]:
    """The organisation's keys, newest first, revoked ones included."""
    org = await find_org(conn, ref)
    rows = await conn.fetch(
        "SELECT id, display_prefix, name, created_at, revoked_at FROM api_keys "
        "WHERE org_id = $1 ORDER BY created_at DESC",
        org["id"],
    )
    return [KeySummary(**dict(r)) for r in rows]


async def rotate_key(conn: asyncpg.Connection, ref: str, *, pepper: str) -> IssuedKey:
    """Issue a new key for the organisation and revoke every key it had before."""
    async with conn.transaction():
        org = await find_org(conn, ref)
        revoked = await conn.fetch(
            "UPDATE api_keys SET revoked_at = now() "
            "WHERE org_id = $1 AND revoked_at IS NULL RETURNING id",
            org["id"],
        )
        key_id, raw = await _insert_key(conn, org["id"], pepper)
    return IssuedKey(
        org_id=org["id"], org_name=org["name"], key_id=key_id, key=raw, revoked_keys=len(revoked)
    )


async def list_orgs(conn: asyncpg.Connection) -> list[OrgSummary]:
    """Every organisation, oldest first, with its count of unrevoked keys."""
    rows = await conn.fetch(
        """
        SELECT o.id, o.name, o.status, o.created_at,
               count(k.id) FILTER (WHERE k.revoked_at IS NULL) AS active_keys
        FROM organizations o
        LEFT JOIN api_keys k ON k.org_id = o.id
        GROUP BY o.id
        ORDER BY o.created_at, o.name
        """
    )
    return [
        OrgSummary(
            id=r["id"],
            name=r["name"],
            status=r["status"],
            active_keys=r["active_keys"],
            created_at=r["created_at"],
        )
        for r in rows
    ]


# Tables whose rows name an org without a foreign key, so no cascade reaches them.
UNLINKED_TABLES = ("request_logs", "request_rollups", "dashboard_summaries")
# Tables emptied of the org's rows by the cascade from ``organizations`` that
# :func:`delete_org` counts (the others, such as invites, are removed all the same).
COUNTED_CASCADES = ("api_keys", "anomalies", "recommendations", "routing_rules", "org_members")


async def delete_org(conn: asyncpg.Connection, org_id: uuid.UUID) -> dict[str, int] | None:
    """Delete the organisation and all its data, request logs and rollups included (for
    erasure requests and ``lectr demo --purge``), in one transaction.

    Rows without a foreign key are deleted explicitly, everything else cascades from
    ``organizations``. Returns the rows removed per table (:data:`UNLINKED_TABLES`, then
    :data:`COUNTED_CASCADES`), or None when there is no such organisation."""
    removed: dict[str, int] = {}
    async with conn.transaction():
        found = await conn.fetchval("SELECT id FROM organizations WHERE id = $1 FOR UPDATE", org_id)
        if found is None:
            return None
        for table in COUNTED_CASCADES:
            removed[table] = await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE org_id = $1", org_id
            )
        for table in UNLINKED_TABLES:
            status = await conn.execute(f"DELETE FROM {table} WHERE org_id = $1", org_id)
            removed[table] = int(status.rsplit(" ", 1)[-1])
        await conn.execute("DELETE FROM organizations WHERE id = $1", org_id)
    return {table: removed[table] for table in (*UNLINKED_TABLES, *COUNTED_CASCADES)}
