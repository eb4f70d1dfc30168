"""An org's settings and Azure OpenAI configuration through the API: read by viewers,
changed by admins, validated (webhooks behind an SSRF guard, the Azure endpoint behind
its host suffixes), audited without webhook URLs, Azure changes told to the proxies."""

from __future__ import annotations

import uuid

import asyncpg
import orjson
import pytest

from api.routes_keys import ROUTES_KEYS
from api.routes_pipeline import ROUTES_PIPELINE
from api.routes_settings import ROUTES_SETTINGS
from api.routes_table import RELOAD_PENDING
from api.settings import ApiSettings
from lectr.settings import SettingsError
from tests.api.conftest import ApiClient, AsMember, StartApi

HOOK = "https://hooks.slack.com/services/T000/B000/secret-token-123"
AZURE = {
    "endpoint": "https://acme.openai.azure.com/",
    "api_version": "2024-10-21",
    "deployments": {"gpt-4o": "prod-4o", "gpt-4o-mini": "mini"},
}
MY_ROUTES = [*ROUTES_KEYS, *ROUTES_SETTINGS, *ROUTES_PIPELINE]


class Recorder:
    """A publisher that records what it was asked to announce; ``up`` decides whether
    it says it could."""

    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.sent: list[tuple[str, tuple[str, ...]]] = []

    async def __call__(self, org_id: uuid.UUID, caches: tuple[str, ...]) -> bool:
        self.sent.append((str(org_id), caches))
        return self.up


async def _audit(db: asyncpg.Connection, org_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT actor, action, object_id, changes FROM audit_log WHERE org_id = $1::uuid "
        "ORDER BY created_at, id",
        org_id,
    )


async def test_settings_read_change_and_audit_without_webhook_urls(
    api: ApiClient, db: asyncpg.Connection, org_name
) -> None:
    org = await api.make_org()
    path = f"/api/orgs/{org['id']}/settings"
    before = await api.call("GET", path)
    assert before.status == 200
    assert before.body == {"id": org["id"], "name": org["name"], "p95_latency_threshold_ms": 5000,
                           "alert_recipients": [], "alert_webhooks": [],
                           "rate_limit_rpm": None, "max_concurrent_streams": None,
                           "azure_configured": False}  # fmt: skip
    # The limits are read here, set by operators on the org itself.
    await api.call("PATCH", f"/api/orgs/{org['id']}", json={"rate_limit_rpm": 120})
    assert (await api.call("GET", path)).body["rate_limit_rpm"] == 120
    refused = await api.call("PATCH", path, json={"rate_limit_rpm": 5})
    assert (refused.status, refused.body["error"]["field"]) == (400, "rate_limit_rpm")

    new_name = org_name()
    change = {"name": new_name, "p95_latency_threshold_ms": 1200,
              "alert_recipients": ["ops@example.com", "ops@example.com", "cto@example.org"],
              "alert_webhooks": [HOOK, "https://93.184.216.34:8443/hook"]}  # fmt: skip
    reply = await api.call("PATCH", path, json=change)

    assert reply.status == 200, reply.body
    assert reply.body["alert_recipients"] == ["ops@example.com", "cto@example.org"]
    assert reply.body["alert_webhooks"] == change["alert_webhooks"]
    assert (await api.call("GET", path)).body == reply.body
    row = await db.fetchrow(
        "SELECT name, p95_latency_threshold_ms FROM organizations WHERE id = $1::uuid", org["id"]
    )
    assert tuple(row) == (new_name, 1200)
    audit = (await _audit(db, org["id"]))[-1]
    assert audit["action"] == "settings.update"
    assert orjson.loads(audit["changes"]) == {
        "name": {"old": org["name"], "new": new_name},
        "p95_latency_threshold_ms": {"old": 5000, "new": 1200},
        "alert_recipients": {"old": [], "new": ["ops@example.com", "cto@example.org"]},
        "alert_webhooks": {"changed": True, "old_count": 0, "new_count": 2},
    }
    assert "secret-token" not in audit["changes"] and "93.184" not in audit["changes"]

    count = len(await _audit(db, org["id"]))
    same = await api.call("PATCH", path, json={"p95_latency_threshold_ms": 1200})
    assert same.status == 200
    assert len(await _audit(db, org["id"])) == count  # no change, no audit row
    cleared = await api.call("PATCH", path, json={"alert_webhooks": []})
    assert cleared.body["alert_webhooks"] == []


async def test_a_taken_name_is_409_and_nothing_changes(
    api: ApiClient, db: asyncpg.Connection
) -> None:
    mine, theirs = await api.make_org(), await api.make_org()
    body = {"name": theirs["name"], "p95_latency_threshold_ms": 10}
    reply = await api.call("PATCH", f"/api/orgs/{mine['id']}/settings", json=body)
    assert reply.status == 409
    assert (reply.body["error"]["code"], reply.body["error"]["field"]) == ("conflict", "name")
    row = await db.fetchrow(
        "SELECT name, p95_latency_threshold_ms FROM organizations WHERE id = $1::uuid", mine["id"]
    )
    assert tuple(row) == (mine["name"], 5000)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"p95_latency_threshold_ms": 0}, "p95_latency_threshold_ms"),
        ({"p95_latency_threshold_ms": "900"}, "p95_latency_threshold_ms"),
        ({"p95_latency_threshold_ms": None}, "p95_latency_threshold_ms"),
        ({"name": "  "}, "name"),
        ({"status": "disabled"}, "status"),
        ({"alert_recipients": "ops@example.com"}, "alert_recipients"),
        ({"alert_recipients": ["not-an-email"]}, "alert_recipients.0"),
        ({"alert_recipients": ["ok@example.com", "a@b"]}, "alert_recipients.1"),
        ({"alert_webhooks": ["http://hooks.example.com/x"]}, "alert_webhooks.0"),
        ({"alert_webhooks": ["ftp://hooks.example.com/x"]}, "alert_webhooks.0"),
        ({"alert_webhooks": ["https://user:pw@hooks.example.com/x"]}, "alert_webhooks.0"),
        ({"alert_webhooks": ["https://127.0.0.1/x"]}, "alert_webhooks.0"),
        ({"alert_webhooks": ["https://10.1.2.3/x"]}, "alert_webhooks.0"),
        ({"alert_webhooks": ["https://192.168.0.1/x"]}, "alert_webhooks.0"),
        ({"alert_webhooks": ["https://169.254.169.254/latest"]}, "alert_webhooks.0"),
        ({"alert_webhooks": ["https://[::1]/x"]}, "alert_webhooks.0"),
        ({"alert_webhooks": ["https://[fe80::1]/x"]}, "alert_webhooks.0"),
        ({"alert_webhooks": ["https://[::ffff:127.0.0.1]/x"]}, "alert_webhooks.0"),
        ({"alert_webhooks": ["https://127.1/x"]}, "alert_webhooks.0"),
        ({"alert_webhooks": ["https://0x7f000001/x"]}, "alert_webhooks.0"),
        ({"alert_webhooks": ["https://localhost:8443/x"]}, "alert_webhooks.0"),
        ({"alert_webhooks": ["https:///x"]}, "alert_webhooks.0"),
        ({"alert_webhooks": [HOOK, "https://0.0.0.0/"]}, "alert_webhooks.1"),
    ],
)
async def test_a_bad_setting_is_400_naming_the_field_and_changes_nothing(
    api: ApiClient, db: asyncpg.Connection, body: dict, field: str
) -> None:
    org = await api.make_org()
    reply = await api.call("PATCH", f"/api/orgs/{org['id']}/settings", json=body)
    assert reply.status == 400
    assert reply.body["error"]["field"] == field
    assert len(await _audit(db, org["id"])) == 1  # the create only


async def test_azure_is_404_until_set_then_read_replaced_told_and_audited(
    start_api: StartApi, db: asyncpg.Connection
) -> None:
    published = Recorder()
    api = await start_api(publisher=published)
    org = await api.make_org()
    path = f"/api/orgs/{org['id']}/providers/azure"
    missing = await api.call("GET", path)
    assert (missing.status, missing.body["error"]["code"]) == (404, "not_found")

    put = await api.call("PUT", path, json=AZURE)

    assert put.status == 200, put.body
    assert put.body["endpoint"] == "https://acme.openai.azure.com"  # no trailing slash
    assert (put.body["deployments"], put.body["proxies"]) == (AZURE["deployments"], None)
    assert (await api.call("GET", path)).body == {
        k: v for k, v in put.body.items() if k != "proxies"
    }
    settings = await api.call("GET", f"/api/orgs/{org['id']}/settings")
    assert settings.body["azure_configured"] is True
    row = await db.fetchrow(
        "SELECT endpoint, api_version, deployments FROM provider_configs "
        "WHERE org_id = $1::uuid AND provider = 'azure'",
        org["id"],
    )
    assert (row["endpoint"], row["api_version"]) == ("https://acme.openai.azure.com", "2024-10-21")
    assert orjson.loads(row["deployments"]) == AZURE["deployments"]
    assert published.sent[-1] == (org["id"], ("provider_configs",))

    replaced = await api.call("PUT", path, json={**AZURE, "deployments": {"gpt-4o": "v2"}})
    assert replaced.body["deployments"] == {"gpt-4o": "v2"}
    audit = await _audit(db, org["id"])
    assert [a["action"] for a in audit[-2:]] == ["azure.update", "azure.update"]
    assert orjson.loads(audit[-1]["changes"]) == {
        "deployments": {"old": AZURE["deployments"], "new": {"gpt-4o": "v2"}}
    }
    sent = len(published.sent)
    same = await api.call("PUT", path, json={**AZURE, "deployments": {"gpt-4o": "v2"}})
    assert same.status == 200
    assert (len(published.sent), len(await _audit(db, org["id"]))) == (sent, len(audit))

    published.up = False
    down = await api.call("PUT", path, json={**AZURE, "api_version": "2025-01-01-preview"})
    assert (down.status, down.body["proxies"]) == (200, RELOAD_PENDING)
    assert (await api.call("GET", path)).body["api_version"] == "2025-01-01-preview"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"endpoint": "http://acme.openai.azure.com"}, "endpoint"),
        ({"endpoint": "https://acme.example.com"}, "endpoint"),
        ({"endpoint": "https://acme.openai.azure.com.evil.net"}, "endpoint"),
        ({"endpoint": "https://evilopenai.azure.com"}, "endpoint"),
        ({"endpoint": "https://u:p@acme.openai.azure.com"}, "endpoint"),
        ({"endpoint": "https://acme.openai.azure.com/?x=1"}, "endpoint"),
        ({"api_version": ""}, "api_version"),
        ({"api_version": "2024/10"}, "api_version"),
        ({"api_version": None}, "api_version"),
        ({"deployments": {"gpt-4o": "../admin"}}, "deployments.gpt-4o"),
        ({"deployments": {"gpt-4o": 5}}, "deployments.gpt-4o"),
        ({"deployments": ["gpt-4o"]}, "deployments"),
        ({"region": "eu"}, "region"),
    ],
)
async def test_a_bad_azure_config_is_400_naming_the_field_and_stores_nothing(
    api: ApiClient, db: asyncpg.Connection, change: dict, field: str
) -> None:
    org = await api.make_org()
    reply = await api.call(
        "PUT", f"/api/orgs/{org['id']}/providers/azure", json={**AZURE, **change}
    )
    assert reply.status == 400
    assert reply.body["error"]["field"] == field
    assert not await db.fetchval(
        "SELECT count(*) FROM provider_configs WHERE org_id = $1::uuid", org["id"]
    )


async def test_a_missing_azure_field_is_400(api: ApiClient) -> None:
    org = await api.make_org()
    body = {k: v for k, v in AZURE.items() if k != "api_version"}
    reply = await api.call("PUT", f"/api/orgs/{org['id']}/providers/azure", json=body)
    assert (reply.status, reply.body["error"]["field"]) == (400, "api_version")


async def test_the_endpoint_suffixes_come_from_the_setting(start_api: StartApi) -> None:
    settings = ApiSettings.from_env({"LECTR_AZURE_ENDPOINT_SUFFIXES": " .Azure.Example.NET ,"})
    assert settings.azure_endpoint_suffixes == (".azure.example.net",)
    assert ApiSettings.from_env({}).azure_endpoint_suffixes == (
        ".openai.azure.com", ".cognitiveservices.azure.com"
    )  # fmt: skip
    with pytest.raises(SettingsError, match="LECTR_AZURE_ENDPOINT_SUFFIXES"):
        ApiSettings.from_env({"LECTR_AZURE_ENDPOINT_SUFFIXES": "openai.azure.com"})
    api = await start_api(api_settings=settings, publisher=Recorder())
    org = await api.make_org()
    path = f"/api/orgs/{org['id']}/providers/azure"
    ok = await api.call("PUT", path, json={**AZURE, "endpoint": "https://a.azure.example.net"})
    assert ok.status == 200
    refused = await api.call("PUT", path, json=AZURE)
    assert (refused.status, refused.body["error"]["field"]) == (400, "endpoint")


def _concrete(path: str, org_id: str) -> str:
    return path.replace("{org}", org_id).replace("{id}", str(uuid.uuid4()))


@pytest.mark.parametrize("route", MY_ROUTES, ids=lambda r: f"{r.method} {r.path}")
async def test_every_route_needs_credentials_and_an_org_of_the_caller(
    api: ApiClient, route
) -> None:
    org = await api.make_org()
    anonymous = await api.call(route.method, _concrete(route.path, org["id"]), anonymous=True)
    assert anonymous.status == 401
    for unknown in (str(uuid.uuid4()), "not-a-uuid"):
        reply = await api.call(route.method, _concrete(route.path, unknown), json={})
        assert reply.status == 404


async def test_oidc_viewers_read_admins_write_and_other_orgs_are_404(
    as_member: AsMember, api: ApiClient
) -> None:
    mine, theirs = await api.make_org(), await api.make_org()
    users = {role: await as_member(mine["id"], role, publisher=Recorder())
             for role in ("viewer", "admin")}  # fmt: skip
    viewer, admin = users["viewer"], users["admin"]
    base = f"/api/orgs/{mine['id']}"
    await api.call("PUT", f"{base}/providers/azure", json=AZURE)

    for path in ("keys", "settings", "providers/azure", "pipeline"):
        assert (await viewer.call("GET", f"{base}/{path}")).status == 200, path
        assert (await viewer.call("GET", f"/api/orgs/{theirs['id']}/{path}")).status == 404
    writes = [("POST", f"{base}/keys", {}),
              ("DELETE", f"{base}/keys/{mine['key_id']}", None),
              ("PATCH", f"{base}/settings", {"p95_latency_threshold_ms": 9}),
              ("PUT", f"{base}/providers/azure", AZURE),
              ("GET", f"{base}/audit", None)]  # fmt: skip
    for method, path, body in writes:
        denied = await viewer.call(method, path, json=body)
        assert (denied.status, denied.body["error"]["code"]) == (403, "forbidden"), path
        assert (await admin.call(method, path, json=body)).status in (200, 201), path

    entries = (await admin.call("GET", f"{base}/audit")).body["entries"]
    assert entries[0]["actor"] == f"user:{users['admin'].email}"
