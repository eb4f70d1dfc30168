"""Invites: a single-use token, sent by email, that makes its bearer a member of an org.

The token is ``lc_inv_`` followed by 43 URL-safe characters (256 random bits); only its
keyed hash (HMAC-SHA256 with ``LECTR_KEY_PEPPER``, as for API keys) is stored, so the
token exists only in the email. It works once, until ``expires_at``. Inviting an email
again replaces the invite it had pending (the older token stops working). Accepting
makes the signed-in user a member with the invited role, under the email their
identity provider vouches for (the invited one when it vouches for none).

Time comes from the caller (``now``), so expiry is tested without waiting.
"""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from lectr.keys import hash_key
from lectr.members import Member, MemberError, add_member, find_by_email, lock_org

TOKEN_PREFIX = "lc_inv_"
_COLUMNS = "id, email, role, invited_by, created_at, expires_at, accepted_at"


@dataclass(frozen=True)
class Invite:
    id: uuid.UUID
    email: str
    role: str
    invited_by: uuid.UUID | None
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None


@dataclass(frozen=True)
class Accepted:
    org_id: uuid.UUID
    org_name: str
    invite: Invite
    member: Member


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def create_invite(
    conn: asyncpg.Connection,
    org_id: uuid.UUID,
    email: str,
    role: str,
    *,
    pepper: str,
    ttl: timedelta,
    now: datetime,
    acting_role: str = "owner",
    invited_by: uuid.UUID | None = None,
) -> tuple[Invite, str, list[Invite]]:
    """A new invite and its token (to email, never to store), and the pending invites
    of the same email it replaced. Runs in the caller's transaction when there is one,
    so the invite can be rolled back when its email cannot be sent."""
    if role == "owner" and acting_role != "owner":
        raise MemberError("forbidden", "only an owner may invite an owner", "role")
    token = generate_token()
    async with conn.transaction():
        await lock_org(conn, org_id)
        if await find_by_email(conn, org_id, email) is not None:
            raise MemberError("conflict", f"{email} is a member already", "email")
        replaced = await conn.fetch(
            f"DELETE FROM org_invites WHERE org_id = $1 AND lower(email) = lower($2) "
            f"AND accepted_at IS NULL RETURNING {_COLUMNS}",
            org_id,
            email,
        )
        row = await conn.fetchrow(
            "INSERT INTO org_invites (org_id, email, role, token_hash, invited_by, created_at,"
            f" expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLUMNS}",
            org_id,
            email,
            role,
            hash_key(token, pepper),
            invited_by,
            now,
            now + ttl,
        )
    return Invite(**dict(row)), token, [Invite(**dict(r)) for r in replaced]


async def list_invites(conn: asyncpg.Connection, org_id: uuid.UUID) -> list[Invite]:
    """The org's invites not yet accepted (expired ones included), newest first."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM org_invites WHERE org_id = $1 AND accepted_at IS NULL "
        "ORDER BY created_at DESC, id",
        org_id,
    )
    return [Invite(**dict(r)) for r in rows]


async def delete_invite(
    conn: asyncpg.Connection, org_id: uuid.UUID, invite_id: uuid.UUID
) -> Invite | None:
    """Withdraw an invite (its token stops working); None when the org has no such one."""
    row = await conn.fetchrow(
        f"DELETE FROM org_invites WHERE id = $1 AND org_id = $2 RETURNING {_COLUMNS}",
        invite_id,
        org_id,
    )
    return None if row is None else Invite(**dict(row))


async def accept_invite(
    conn: asyncpg.Connection,
    token: str,
    *,
    pepper: str,
    now: datetime,
    oidc_subject: str,
    email: str | None,
) -> Accepted:
    """Spend the invite ``token``: the user ``oidc_subject`` becomes a member.

    ``not_found`` for a token that matches no invite or has expired, ``conflict`` for one
    already used or a user who is a member already (the token is then not spent)."""
    async with conn.transaction():
        row = await conn.fetchrow(
            f"SELECT org_id, {_COLUMNS} FROM org_invites WHERE token_hash = $1 FOR UPDATE",
            hash_key(token, pepper),
        )
        if row is None:
            raise MemberError("not_found", "no such invite: it was withdrawn or replaced", "token")
        invite = Invite(**{k: v for k, v in dict(row).items() if k != "org_id"})
        if invite.accepted_at is not None:
            raise MemberError("conflict", "this invite has been used already", "token")
        if invite.expires_at <= now:
            raise MemberError("not_found", "this invite has expired: ask for a new one", "token")
        member = await add_member(
            conn,
            row["org_id"],
            email or invite.email,
            invite.role,
            oidc_subject=oidc_subject,
        )
        await conn.execute("UPDATE org_invites SET accepted_at = $2 WHERE id = $1", invite.id, now)
        org_name = await conn.fetchval(
            "SELECT name FROM organizations WHERE id = $1", row["org_id"]
        )
    accepted = dataclasses.replace(invite, accepted_at=now)
    return Accepted(org_id=row["org_id"], org_name=org_name, invite=accepted, member=member)
