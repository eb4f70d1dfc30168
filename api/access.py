"""What a caller may do in an org, asked by every org-scoped handler first.

Operators act as an owner of every org that exists. A user's role comes from the
memberships loaded when the request was authenticated. An org that does not exist and
an org the caller is not a member of both answer 404, so org ids cannot be probed; a
role that is too low answers 403.
"""

from __future__ import annotations

import uuid

import asyncpg
from aiohttp import web

from api.caller import Caller
from api.errors import ApiError, not_found
from lectr.members import ROLE_RANK

# Set by the auth middleware on every request that is not public. Typed keys: aiohttp
# warns about (and the tests fail on) plain string keys on a request.
CALLER = web.RequestKey("caller", Caller)
POOL = web.RequestKey("lectr_api_auth_pool", asyncpg.Pool)

_ORG_EXISTS = "SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1)"


def caller_of(request: web.Request) -> Caller:
    """The authenticated caller; 401 on a route the middleware treated as public."""
    caller = request.get(CALLER)
    if caller is None:
        raise ApiError("unauthorized", "authentication required")
    return caller


async def require(request: web.Request, org_id: uuid.UUID, minimum: str) -> str:
    """The caller's role in ``org_id`` (``owner`` for operators).

    Raises ``ApiError("not_found")`` when the org does not exist or the caller is not
    a member, ``ApiError("forbidden")`` when their role ranks below ``minimum``.
    """
    if minimum not in ROLE_RANK:
        raise ValueError(f"unknown role {minimum!r}")
    caller = caller_of(request)
    if caller.operator:
        role = "owner"
    else:
        membership = caller.memberships.get(org_id)
        if membership is None:
            raise not_found("organization not found")
        role = membership.role
    # Also for members: the org may have been deleted since their memberships were read.
    if not await request[POOL].fetchval(_ORG_EXISTS, org_id):
        raise not_found("organization not found")
    if ROLE_RANK[role] < ROLE_RANK[minimum]:
        raise ApiError("forbidden", f"this needs the {minimum} role or higher in the org")
    return role


def require_operator(request: web.Request) -> None:
    """Raises ``ApiError("forbidden")`` unless the caller signed in as an operator."""
    if not caller_of(request).operator:
        raise ApiError("forbidden", "only operators may do this")
