"""An org's API keys: list, issue (the raw key shown once), revoke.

Issuing and revoking go through :mod:`lectr.orgs`, as ``lectr key`` does. Each change
and its audit row share one transaction; the audit row names the key by id, name and
display prefix, never its raw value or hash. After the commit the proxies are told to
reload their ``keys`` cache (a broker outage only delays that: ``proxies`` says so).

Revoking a key that is already revoked is idempotent: 200 with the key as it is (its
first ``revoked_at``), no audit row and no control message, since nothing changed.
"""

from __future__ import annotations

import dataclasses

from aiohttp import web

from api import audit
from api.body import parse_body
from api.errors import not_found
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
from api.schemas_settings import Key, KeyCreate, KeyCreated, KeyList, KeyRevoked
from lectr import orgs

_ORG = "/api/orgs/{org}"


async def list_keys(request: web.Request) -> web.Response:
    org_id = path_uuid(request, "org")
    async with request.app[POOL].acquire() as conn:
        keys = await orgs.list_keys(conn, str(org_id))
    return reply(KeyList(keys=[Key(**dataclasses.asdict(k)) for k in keys]))


async def create_key(request: web.Request) -> web.Response:
    org_id = path_uuid(request, "org")
    # An empty body is a key without a name.
    body = await parse_body(request, KeyCreate) if await request.read() else KeyCreate()
    pepper = request.app[SETTINGS].key_pepper
    async with request.app[POOL].acquire() as conn, conn.transaction():
        issued = await orgs.create_key(conn, str(org_id), pepper=pepper, name=body.name)
        row = await conn.fetchrow(
            "SELECT id, display_prefix, name, created_at, revoked_at FROM api_keys WHERE id = $1",
            issued.key_id,
        )
        await audit.record(conn, caller(request), org_id=org_id, action="key.create",
                           object_type="api_key", object_id=issued.key_id,
                           changes={"name": row["name"],
                                    "display_prefix": row["display_prefix"]})  # fmt: skip
    proxies = await _tell_proxies(request)
    return reply(KeyCreated(**dict(row), key=issued.key, proxies=proxies), status=201)


async def revoke_key(request: web.Request) -> web.Response:
    org_id, key_id = path_uuid(request, "org"), path_uuid(request, "id")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        revoked = await orgs.revoke_org_key(conn, org_id, key_id)
        if revoked is None:
            raise not_found("no such key")
        key, changed = revoked
        if changed:
            changes = {"revoked_at": {"old": None, "new": key.revoked_at}}
            await audit.record(conn, caller(request), org_id=org_id, action="key.revoke",
                               object_type="api_key", object_id=key_id,
                               changes=changes)  # fmt: skip
    proxies = await _tell_proxies(request) if changed else None
    return reply(KeyRevoked(**dataclasses.asdict(key), proxies=proxies))


async def _tell_proxies(request: web.Request) -> str | None:
    published = await request.app[PUBLISHER](path_uuid(request, "org"), ("keys",))
    return None if published else RELOAD_PENDING


ROUTES_KEYS = [
    Route("GET", f"{_ORG}/keys", list_keys, "The org's API keys, newest first (never the keys)",
          "viewer", response_model=KeyList),
    Route("POST", f"{_ORG}/keys", create_key, "Issue an API key (its value is shown once)",
          "admin", request_model=KeyCreate, response_model=KeyCreated, status=201),
    Route("DELETE", f"{_ORG}/keys/{{id}}", revoke_key,
          "Revoke an API key (proxies refuse it at once; idempotent)", "admin",
          response_model=KeyRevoked),
]  # fmt: skip
