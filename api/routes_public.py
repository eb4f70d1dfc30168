"""Routes anyone may call (health, the OpenAPI document, what the dashboard needs to sign
in) and ``/api/me``."""

from __future__ import annotations

import asyncio

from aiohttp import web

from api import openapi
from api.routes_table import API_SETTINGS, POOL, ROUTES, SETTINGS, Route, caller, reply
from api.schemas import Health, Me, MyOrg, OidcConfig, PublicConfig
from lectr.db import UNREACHABLE_ERRORS

# /api/health says the database is down rather than hang when it does not answer.
HEALTH_DB_TIMEOUT_S = 2.0


async def health(request: web.Request) -> web.Response:
    """Always 200 while the process serves; ``database`` says whether Postgres answered."""
    pool = request.app[POOL]
    try:
        async with asyncio.timeout(HEALTH_DB_TIMEOUT_S), pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
        database = True
    except (*UNREACHABLE_ERRORS, OSError):
        database = False
    return reply(Health(status="ok", database=database))


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(openapi.document(request.app[ROUTES], openapi.installed_version()))


async def config(request: web.Request) -> web.Response:
    """What the dashboard needs before anyone signs in."""
    api_settings = request.app[API_SETTINGS]
    oidc = None
    if api_settings.oidc_issuer and api_settings.oidc_client_id:
        oidc = OidcConfig(
            issuer=api_settings.oidc_issuer,
            client_id=api_settings.oidc_client_id,
            audience=api_settings.oidc_audience,
        )
    operator = api_settings.operator_secret(request.app[SETTINGS]) is not None
    return reply(
        PublicConfig(
            oidc=oidc,
            operator_sign_in=operator,
            proxy_url=api_settings.client_proxy_url(request.app[SETTINGS]),
            version=openapi.installed_version(),
        )
    )


async def me(request: web.Request) -> web.Response:
    """The caller and the orgs it may open; an operator is an owner of every org."""
    who = caller(request)
    async with request.app[POOL].acquire() as conn:
        if who.operator:
            rows = await conn.fetch("SELECT id, name, 'owner' AS role FROM organizations")
        else:
            rows = await conn.fetch(
                "SELECT id, name FROM organizations WHERE id = ANY($1::uuid[])",
                list(who.memberships),
            )
            rows = [{**dict(r), "role": who.memberships[r["id"]].role} for r in rows]
    orgs = sorted((MyOrg.model_validate(dict(r)) for r in rows), key=lambda o: o.name)
    return reply(Me(operator=who.operator, email=who.email, orgs=orgs))


ROUTES_PUBLIC = [
    Route("GET", "/api/health", health, "Whether the API and its database answer", "public",
          response_model=Health),
    Route("GET", "/api/openapi.json", openapi_document, "This API's OpenAPI 3.1 document",
          "public"),
    Route("GET", "/api/config", config, "What the dashboard needs to sign in", "public",
          response_model=PublicConfig),
]  # fmt: skip

ROUTES_ME = [
    Route("GET", "/api/me", me, "The caller and each org's id, name and the caller's role",
          "signed_in", response_model=Me),
]  # fmt: skip
