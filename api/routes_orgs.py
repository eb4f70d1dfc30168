"""Operators' routes: create, list, change and delete organisations.

Creating an org goes through :func:`lectr.orgs.create_org` and its status through
:func:`lectr.orgs.set_status`, as ``lectr org`` does. Every change and its audit row
share one transaction; after a change proxies cache is committed, the proxies are told
(a broker outage only delays that: the response says so in ``proxies``).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from aiohttp import web

from api import audit
from api.body import parse_body
from api.errors import ApiError, not_found
from api.routes_table import (
    POOL,
    PUBLISHER,
    RELOAD_PENDING,
    SETTINGS,
    Route,
    caller,
    path_uuid,
    reply,
)
from api.schemas import Org, OrgChanged, OrgCreate, OrgCreated, OrgDeleted, OrgList, OrgPatch
from lectr import orgs
from schema.control import CACHES

_ORG_COLUMNS = ", ".join(Org.model_fields)


# The tables whose rows name an org without a foreign key (so no cascade reaches them).
async def _org_row(
    conn: asyncpg.Connection, org_id: uuid.UUID, *, lock: bool = False
) -> dict[str, Any]:
    """The org's columns; ``lock`` holds the row until the transaction ends, so two
    changes at once are audited against what each really changed."""
    sql = f"SELECT {_ORG_COLUMNS} FROM organizations WHERE id = $1"
    row = await conn.fetchrow(sql + (" FOR UPDATE" if lock else ""), org_id)
    if row is None:
        raise not_found("no such organisation")
    return dict(row)


async def create(request: web.Request) -> web.Response:
    body = await parse_body(request, OrgCreate)
    pepper = request.app[SETTINGS].key_pepper
    async with request.app[POOL].acquire() as conn, conn.transaction():
        try:
            issued = await orgs.create_org(conn, body.name, pepper=pepper)
        except orgs.OrgError as exc:  # the name is taken (the model checked its length)
            raise ApiError("conflict", str(exc), field="name") from None
        await audit.record(conn, caller(request), org_id=issued.org_id, action="org.create",
                           object_type="organization", object_id=issued.org_id,
                           changes={"name": issued.org_name})  # fmt: skip
        row = await _org_row(conn, issued.org_id)
    created = OrgCreated(**row, key=issued.key, key_id=issued.key_id)
    return reply(created, status=201)


async def list_all(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        rows = await conn.fetch(f"SELECT {_ORG_COLUMNS} FROM organizations ORDER BY name")
    return reply(OrgList(orgs=[Org.model_validate(dict(r)) for r in rows]))


async def patch(request: web.Request) -> web.Response:
    org_id = path_uuid(request, "org")
    body = await parse_body(request, OrgPatch)
    wanted = body.model_dump(include=body.model_fields_set)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        before = await _org_row(conn, org_id, lock=True)
        changes = audit.diff(before, wanted)
        if "status" in changes:
            await orgs.set_status(conn, str(org_id), wanted["status"])
        limits = {k: v for k, v in wanted.items() if k != "status" and k in changes}
        await orgs.set_limits(conn, org_id, **limits)
        if changes:
            await audit.record(conn, caller(request), org_id=org_id, action="org.update",
                               object_type="organization", object_id=org_id,
                               changes=changes)  # fmt: skip
        after = await _org_row(conn, org_id)
    proxies = await _tell_proxies(request, org_id, ("orgs",)) if changes else None
    return reply(OrgChanged(**after, proxies=proxies))


async def delete(request: web.Request) -> web.Response:
    """The org and all its data, for erasure requests (:func:`lectr.orgs.delete_org`)."""
    org_id = path_uuid(request, "org")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        org = await _org_row(conn, org_id, lock=True)
        await orgs.delete_org(conn, org_id)
        await audit.record(conn, caller(request), org_id=org_id, action="org.delete",
                           object_type="organization", object_id=org_id,
                           changes={"name": org["name"]})  # fmt: skip
    proxies = await _tell_proxies(request, org_id, CACHES)
    return reply(OrgDeleted(id=org_id, deleted=True, proxies=proxies))


async def _tell_proxies(
    request: web.Request, org_id: uuid.UUID, caches: tuple[str, ...]
) -> str | None:
    """None once the proxies were told; else what the response says about it."""
    published = await request.app[PUBLISHER](org_id, caches)
    return None if published else RELOAD_PENDING


ROUTES_ORGS = [
    Route("POST", "/api/orgs", create, "Create an organisation and its first key", "operator",
          request_model=OrgCreate, response_model=OrgCreated, status=201),
    Route("GET", "/api/orgs", list_all, "Every organisation", "operator",
          response_model=OrgList),
    Route("PATCH", "/api/orgs/{org}", patch,
          "Change an organisation's status or limits (proxies apply it at once)", "operator",
          request_model=OrgPatch, response_model=OrgChanged),
    Route("DELETE", "/api/orgs/{org}", delete,
          "Delete an organisation and all its data, request logs and rollups included",
          "operator", response_model=OrgDeleted),
]  # fmt: skip
