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
class OrgSummary:
    id: uuid.UUID
    name: str
    status: str
    active_keys: int
    created_at: datetime


async def _insert_key(
    conn: asyncpg.Connection, org_id: uuid.UUID, pepper: str
) -> tuple[uuid.UUID, str]:
    raw = generate_key()
    key_id = await conn.fetchval(
        "INSERT INTO api_keys (org_id, key_hash, display_prefix) VALUES ($1, $2, $3) RETURNING id",
        org_id,
        hash_key(raw, pepper),
        display_prefix(raw),
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
