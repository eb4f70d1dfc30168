"""What an org admin decides: the org's settings and its Azure OpenAI configuration.

Settings (``name``, ``p95_latency_threshold_ms``, ``alert_recipients``,
``alert_webhooks``) are read by the dashboard and the scheduler, not cached by proxies,
so a change publishes nothing. The Azure configuration is cached by every proxy: after
the commit they are told to reload ``provider_configs``. Each change and its audit row
share one transaction. Webhook URLs may carry their secret (Slack puts it in the path),
so their audit entry says only that they changed and how many there were and are.

``GET …/providers/azure`` with nothing configured is a 404 (``not_found``).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from api import audit
from api.body import parse_body
from api.errors import ApiError, not_found
from api.routes_table import (
    API_SETTINGS,
    POOL,
    PUBLISHER,
    RELOAD_PENDING,
    Route,
    caller,
    path_uuid,
    reply,
)
from api.schemas_settings import (
    AzureConfig,
    AzureConfigChanged,
    AzureConfigPut,
    OrgSettings,
    SettingsPatch,
    https_host,
)

_ORG = "/api/orgs/{org}"
_SETTINGS_COLUMNS = ", ".join(
    [*(f for f in OrgSettings.model_fields if f != "azure_configured"),
     "EXISTS (SELECT 1 FROM provider_configs p WHERE p.org_id = organizations.id"
     " AND p.provider = 'azure') AS azure_configured"]
)  # fmt: skip
_AZURE_COLUMNS = "endpoint, api_version, deployments, updated_at"


async def _settings_row(
    conn: asyncpg.Connection, org_id: uuid.UUID, *, lock: bool = False
) -> dict[str, Any]:
    sql = f"SELECT {_SETTINGS_COLUMNS} FROM organizations WHERE id = $1"
    row = await conn.fetchrow(sql + (" FOR UPDATE" if lock else ""), org_id)
    if row is None:
        raise not_found("no such organisation")
    return dict(row)


async def get_settings(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        row = await _settings_row(conn, path_uuid(request, "org"))
    return reply(OrgSettings(**row))


def _audited(changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` with the webhook URLs replaced by their counts."""
    hooks = changes.get("alert_webhooks")
    if hooks is None:
        return changes
    counts = {"changed": True, "old_count": len(hooks["old"]), "new_count": len(hooks["new"])}
    return {**changes, "alert_webhooks": counts}


async def patch_settings(request: web.Request) -> web.Response:
    org_id = path_uuid(request, "org")
    body = await parse_body(request, SettingsPatch)
    wanted = body.model_dump(include=body.model_fields_set)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        before = await _settings_row(conn, org_id, lock=True)
        changes = audit.diff(before, wanted)
        if changes:
            sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(changes, start=2))
            try:
                await conn.execute(
                    f"UPDATE organizations SET {sets}, updated_at = now() WHERE id = $1",
                    org_id,
                    *(wanted[name] for name in changes),
                )
            except asyncpg.UniqueViolationError:
                raise ApiError(
                    "conflict", f"an organisation named {wanted['name']!r} exists", field="name"
                ) from None
            await audit.record(conn, caller(request), org_id=org_id, action="settings.update",
                               object_type="organization", object_id=org_id,
                               changes=_audited(changes))  # fmt: skip
        after = await _settings_row(conn, org_id)
    return reply(OrgSettings(**after))


def _azure(row: asyncpg.Record) -> dict[str, Any]:
    deployments = row["deployments"]
    if isinstance(deployments, str | bytes):
        deployments = orjson.loads(deployments)
    return {**dict(row), "deployments": deployments}


async def get_azure(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT {_AZURE_COLUMNS} FROM provider_configs "
            "WHERE org_id = $1 AND provider = 'azure'",
            path_uuid(request, "org"),
        )
    if row is None:
        raise not_found("Azure OpenAI is not configured for this organisation")
    return reply(AzureConfig(**_azure(row)))


def _check_suffix(request: web.Request, endpoint: str) -> None:
    suffixes = request.app[API_SETTINGS].azure_endpoint_suffixes
    if not https_host(endpoint).endswith(suffixes):
        raise ApiError(
            "invalid_request",
            f"endpoint: the host must end with one of {', '.join(suffixes)}",
            field="endpoint",
        )


async def put_azure(request: web.Request) -> web.Response:
    org_id = path_uuid(request, "org")
    body = await parse_body(request, AzureConfigPut)
    _check_suffix(request, body.endpoint)
    new = body.model_dump()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        old = await conn.fetchrow(
            f"SELECT {_AZURE_COLUMNS} FROM provider_configs "
            "WHERE org_id = $1 AND provider = 'azure' FOR UPDATE",
            org_id,
        )
        before = _azure(old) if old is not None else {}
        row = await conn.fetchrow(
            "INSERT INTO provider_configs (org_id, provider, endpoint, api_version, deployments)"
            " VALUES ($1, 'azure', $2, $3, $4::jsonb) ON CONFLICT (org_id, provider) DO UPDATE"
            " SET endpoint = excluded.endpoint, api_version = excluded.api_version,"
            f" deployments = excluded.deployments, updated_at = now() RETURNING {_AZURE_COLUMNS}",
            org_id,
            new["endpoint"],
            new["api_version"],
            orjson.dumps(new["deployments"]).decode(),
        )
        changes = audit.diff(before, new)
        if changes:
            await audit.record(conn, caller(request), org_id=org_id, action="azure.update",
                               object_type="provider_config", object_id="azure",
                               changes=changes)  # fmt: skip
    proxies = None
    if changes and not await request.app[PUBLISHER](org_id, ("provider_configs",)):
        proxies = RELOAD_PENDING
    return reply(AzureConfigChanged(**_azure(row), proxies=proxies))


ROUTES_SETTINGS = [
    Route("GET", f"{_ORG}/settings", get_settings, "The org's settings", "viewer",
          response_model=OrgSettings),
    Route("PATCH", f"{_ORG}/settings", patch_settings,
          "Change the org's name, P95 threshold, alert recipients or webhooks", "admin",
          request_model=SettingsPatch, response_model=OrgSettings),
    Route("GET", f"{_ORG}/providers/azure", get_azure,
          "The org's Azure OpenAI configuration (404 when none)", "viewer",
          response_model=AzureConfig),
    Route("PUT", f"{_ORG}/providers/azure", put_azure,
          "Set the org's Azure OpenAI endpoint, api-version and deployments (proxies apply "
          "it at once)", "admin", request_model=AzureConfigPut, response_model=AzureConfigChanged),
]  # fmt: skip
