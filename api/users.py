"""Finding the org memberships of a signed-in dashboard user.

A member row is made with only ``org_id``, ``email`` and ``role`` (by ``lectr`` and by
invites); the user's OIDC subject is not known until they sign in. So a user is found
by ``oidc_subject``, and rows with their email (compared case-insensitively) that have
no subject yet are claimed by recording the subject on them. Rows already bound to
another subject are never taken over by email.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from api.caller import Caller, Membership
from lectr.members import ROLE_RANK

_CLAIM_BY_EMAIL = """
UPDATE org_members SET oidc_subject = $1
WHERE lower(email) = lower($2) AND oidc_subject IS NULL
"""
_BY_SUBJECT = "SELECT id, org_id, role, email FROM org_members WHERE oidc_subject = $1"


async def find_caller(
    pool: asyncpg.Pool,
    subject: str,
    email: str | None,
    lookup_email: Callable[[], Awaitable[str | None]],
) -> Caller:
    """The user ``subject`` with their memberships.

    ``email``: the token's verified email claim, if any; otherwise ``lookup_email`` is
    awaited (the issuer's userinfo). The email claims unbound rows on every request, so
    a user added to a second org after their first sign-in gets it on their next
    request. A user with no membership is still a :class:`Caller` (with none).
    """
    if email is None:
        email = await lookup_email()
    async with pool.acquire() as conn:
        if email is not None:
            await conn.execute(_CLAIM_BY_EMAIL, subject, email)
        rows = await conn.fetch(_BY_SUBJECT, subject)
    memberships: dict[uuid.UUID, Membership] = {}
    for row in rows:
        known = memberships.get(row["org_id"])
        # Two rows in one org (two emails claimed by one subject): the higher role counts.
        if known is None or ROLE_RANK[row["role"]] > ROLE_RANK[known.role]:
            memberships[row["org_id"]] = Membership(member_id=row["id"], role=row["role"])
    if email is None and rows:
        email = rows[0]["email"]
    return Caller(operator=False, subject=subject, email=email, memberships=memberships)
