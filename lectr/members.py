"""An organisation's members: who may open it in the dashboard, and with what role.

What ``lectr member`` and the management API both do. Roles rank ``viewer`` (reads),
``member`` (reads and dismisses), ``admin`` (changes rules, keys, settings, members)
and ``owner``. Whoever acts passes their own role as ``acting_role`` (operators and the
``lectr`` command act as owners): only an owner makes, changes or removes an owner,
and an org that has owners always keeps one, so it cannot be locked out of itself.

A member row is made with only the org, an email and a role; the user's OIDC subject
is recorded the first time they sign in with that email. Emails are compared without
regard to case. Every change locks the org's row first, so two changes to one org's
members never interleave (the last-owner check included).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from schema.constants import MEMBER_ROLES

ROLE_RANK = {"viewer": 0, "member": 1, "admin": 2, "owner": 3}
assert set(ROLE_RANK) == set(MEMBER_ROLES)

_COLUMNS = "id, email, role, oidc_subject, created_at"


class MemberError(Exception):
    """A change that cannot be made. ``code`` is ``invalid``, ``not_found``,
    ``forbidden`` or ``conflict``; ``field`` names the input at fault, if one is."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


@dataclass(frozen=True)
class Member:
    id: uuid.UUID
    email: str
    role: str
    oidc_subject: str | None
    created_at: datetime


def _check_role(role: str) -> None:
    if role not in ROLE_RANK:
        raise MemberError("invalid", f"role must be one of {', '.join(MEMBER_ROLES)}", "role")


async def lock_org(conn: asyncpg.Connection, org_id: uuid.UUID) -> None:
    """Lock the org's row for the rest of the transaction; MemberError when it is gone."""
    if await conn.fetchval("SELECT id FROM organizations WHERE id = $1 FOR UPDATE", org_id) is None:
        raise MemberError("not_found", "no such organisation")


async def list_members(conn: asyncpg.Connection, org_id: uuid.UUID) -> list[Member]:
    """The org's members, owners first, then by email."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM org_members WHERE org_id = $1 "
        "ORDER BY array_position($2::text[], role), lower(email)",
        org_id,
        list(MEMBER_ROLES),
    )
    return [Member(**dict(r)) for r in rows]


async def find_by_email(conn: asyncpg.Connection, org_id: uuid.UUID, email: str) -> Member | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM org_members WHERE org_id = $1 AND lower(email) = lower($2)",
        org_id,
        email,
    )
    return None if row is None else Member(**dict(row))


async def add_member(
    conn: asyncpg.Connection,
    org_id: uuid.UUID,
    email: str,
    role: str,
    *,
    acting_role: str = "owner",
    oidc_subject: str | None = None,
) -> Member:
    """Make ``email`` a member with ``role``. Conflict when the org has a member with
    that email already (or, given ``oidc_subject``, that user under another email)."""
    _check_role(role)
    if role == "owner" and acting_role != "owner":
        raise MemberError("forbidden", "only an owner may make an owner", "role")
    async with conn.transaction():
        await lock_org(conn, org_id)
        if await find_by_email(conn, org_id, email) is not None:
            raise MemberError("conflict", f"{email} is a member already", "email")
        if oidc_subject is not None and await conn.fetchval(
            "SELECT 1 FROM org_members WHERE org_id = $1 AND oidc_subject = $2",
            org_id,
            oidc_subject,
        ):
            raise MemberError("conflict", "you are a member of this organisation already")
        row = await conn.fetchrow(
            "INSERT INTO org_members (org_id, email, role, oidc_subject) "
            f"VALUES ($1, $2, $3, $4) RETURNING {_COLUMNS}",
            org_id,
            email,
            role,
            oidc_subject,
        )
    return Member(**dict(row))


async def _target(conn: asyncpg.Connection, org_id: uuid.UUID, member_id: uuid.UUID) -> Member:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM org_members WHERE id = $1 AND org_id = $2", member_id, org_id
    )
    if row is None:
        raise MemberError("not_found", "no such member")
    return Member(**dict(row))


async def _keep_an_owner(conn: asyncpg.Connection, org_id: uuid.UUID, target: Member) -> None:
    if target.role != "owner":
        return
    owners = await conn.fetchval(
        "SELECT count(*) FROM org_members WHERE org_id = $1 AND role = 'owner'", org_id
    )
    if owners <= 1:
        raise MemberError(
            "conflict", "this is the organisation's last owner: make another owner first"
        )


def _owner_only(target: Member, acting_role: str, what: str) -> None:
    if target.role == "owner" and acting_role != "owner":
        raise MemberError("forbidden", f"only an owner may {what} an owner")


async def change_role(
    conn: asyncpg.Connection,
    org_id: uuid.UUID,
    member_id: uuid.UUID,
    role: str,
    *,
    acting_role: str = "owner",
) -> tuple[Member, Member]:
    """Give a member ``role``; returns the member before and after."""
    _check_role(role)
    async with conn.transaction():
        await lock_org(conn, org_id)
        before = await _target(conn, org_id, member_id)
        if before.role == role:
            return before, before
        _owner_only(before, acting_role, "change")
        if role == "owner" and acting_role != "owner":
            raise MemberError("forbidden", "only an owner may make an owner", "role")
        await _keep_an_owner(conn, org_id, before)
        row = await conn.fetchrow(
            f"UPDATE org_members SET role = $2 WHERE id = $1 RETURNING {_COLUMNS}",
            member_id,
            role,
        )
    return before, Member(**dict(row))


async def remove_member(
    conn: asyncpg.Connection,
    org_id: uuid.UUID,
    member_id: uuid.UUID,
    *,
    acting_role: str = "owner",
) -> Member:
    """Remove a member from the org; returns who was removed."""
    async with conn.transaction():
        await lock_org(conn, org_id)
        target = await _target(conn, org_id, member_id)
        _owner_only(target, acting_role, "remove")
        await _keep_an_owner(conn, org_id, target)
        await conn.execute("DELETE FROM org_members WHERE id = $1", member_id)
    return target
