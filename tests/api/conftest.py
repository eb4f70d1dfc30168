"""The management API on a free local port against the session database.

``start_api`` starts an app (settings and publisher may be replaced, e.g. a broker URL
where nothing listens); ``api`` is one started with the session's services. Calls go
through :class:`ApiClient`, with the operator's credentials unless told otherwise.
"""

from __future__ import annotations

import dataclasses
import io
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from api.app import create_app
from api.settings import ApiSettings
from lectr.broker import BrokerNames
from lectr.db import close_pool, create_pool
from lectr.settings import Settings
from tests.support.processes import free_port

PEPPER = "test-pepper-0123456789abcdef"


@dataclasses.dataclass
class Reply:
    status: int
    body: Any
    headers: Any


class ApiClient:
    def __init__(self, base_url: str, session: aiohttp.ClientSession, settings: Settings):
        self.base_url = base_url
        self.session = session
        self.settings = settings
        self.operator = {"Authorization": f"Bearer {settings.admin_secret}"}
        # The signed-in user's email, for clients made by ``as_member``.
        self.email: str | None = None

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | io.BytesIO | None = None,
        headers: dict[str, str] | None = None,
        anonymous: bool = False,
    ) -> Reply:
        sent = {} if anonymous else dict(self.operator)
        sent.update(headers or {})
        async with self.session.request(
            method, f"{self.base_url}{path}", json=json, data=data, headers=sent
        ) as response:
            raw = await response.read()
            body = await response.json() if raw else None
            return Reply(response.status, body, response.headers)

    async def make_org(self, name: str | None = None) -> dict[str, Any]:
        """A new org (a unique name unless given), made through the API."""
        reply = await self.call("POST", "/api/orgs", json={"name": name or _name()})
        assert reply.status == 201, reply.body
        return reply.body


def _name() -> str:
    return f"org-{uuid.uuid4().hex[:12]}"


StartApi = Callable[..., Awaitable[ApiClient]]


@pytest.fixture
def lectr_settings(database_url: str, amqp_url: str, broker_names: BrokerNames) -> Settings:
    return Settings(
        database_url=database_url,
        amqp_url=amqp_url,
        broker_prefix=broker_names.prefix,
        key_pepper=PEPPER,
    )


@pytest.fixture
async def start_api(lectr_settings: Settings) -> AsyncIterator[StartApi]:
    """Start an app: ``start_api(settings=..., api_settings=..., routes=...)``."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def start(
        settings: Settings | None = None,
        api_settings: ApiSettings | None = None,
        **app_options: Any,
    ) -> ApiClient:
        settings = settings or lectr_settings
        pool = await create_pool(settings.database_url, min_size=0, max_size=10)
        app = create_app(settings, api_settings or ApiSettings(), pool, **app_options)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        session = aiohttp.ClientSession()

        async def stop() -> None:
            await session.close()
            await runner.cleanup()
            await close_pool(pool)

        cleanups.append(stop)
        return ApiClient(f"http://127.0.0.1:{port}", session, settings)

    yield start
    for stop in reversed(cleanups):
        await stop()


@pytest.fixture
async def api(start_api: StartApi) -> ApiClient:
    return await start_api()


@pytest.fixture
def org_name() -> Callable[[], str]:
    return _name


async def seed_org_data(conn: asyncpg.Connection, org_id: uuid.UUID) -> dict[str, uuid.UUID]:
    """One request log, rollup, summary, anomaly and recommendation of ``org_id``; returns
    the anomaly's and the recommendation's ids."""
    await conn.execute(
        "INSERT INTO request_logs (id, created_at, completed_at, org_id, api_key_id, provider,"
        " endpoint, streaming, status_code, latency_ms, proxy_instance)"
        " VALUES (gen_random_uuid(), now(), now(), $1, gen_random_uuid(), 'openai',"
        " '/v1/chat/completions', false, 200, 12.5, 'test')",
        org_id,
    )
    await conn.execute(
        "INSERT INTO request_rollups (bucket_start, org_id, feature, provider, model,"
        " status_class, request_count, latency_histogram)"
        " VALUES (date_trunc('hour', now()), $1, 'chat', 'openai', 'gpt-4o', '2xx', 1, '{1}')",
        org_id,
    )
    await conn.execute(
        "INSERT INTO dashboard_summaries (org_id, period, window_start, window_end, data)"
        " VALUES ($1, '24h', now() - interval '24 hours', now(), '{\"requests\": 7}')",
        org_id,
    )
    anomaly = await conn.fetchval(
        "INSERT INTO anomalies (org_id, kind, severity, window_start, window_end, observed,"
        " details) VALUES ($1, 'cost', 'warning', now() - interval '1 hour', now(), 3.5,"
        ' \'{"why": "spend"}\') RETURNING id',
        org_id,
    )
    recommendation = await conn.fetchval(
        "INSERT INTO recommendations (org_id, feature, provider, current_model,"
        " recommended_model, steps, window_start, window_end, request_count,"
        " current_cost_usd, projected_cost_usd, projected_savings_usd, rationale)"
        " VALUES ($1, 'chat', 'openai', 'gpt-4o', 'gpt-4o-mini', 1, now() - interval '7 days',"
        " now(), 1000, 12.5, 2.5, 10, 'cheaper model answers as well') RETURNING id",
        org_id,
    )
    return {"anomaly": anomaly, "recommendation": recommendation}


ORG_TABLES = ("request_logs", "request_rollups", "dashboard_summaries", "anomalies",
              "recommendations", "api_keys")  # fmt: skip


async def count_rows(conn: asyncpg.Connection, org_id: uuid.UUID) -> dict[str, int]:
    return {
        table: await conn.fetchval(f"SELECT count(*) FROM {table} WHERE org_id = $1", org_id)
        for table in ORG_TABLES
    }


async def audit_trail(db: asyncpg.Connection, org_id: str, actions: str) -> list[tuple[str, Any]]:
    """The org's audit entries whose action is LIKE ``actions`` (``rule.%``), oldest
    first: (action, changes)."""
    rows = await db.fetch(
        "SELECT action, changes FROM audit_log WHERE org_id = $1 AND action LIKE $2"
        " ORDER BY created_at",
        uuid.UUID(org_id),
        actions,
    )
    return [(r["action"], orjson.loads(r["changes"])) for r in rows]


AsMember = Callable[..., Awaitable[ApiClient]]


@pytest.fixture
async def as_member(start_api: StartApi, db: asyncpg.Connection) -> AsyncIterator[AsMember]:
    """``await as_member(org_id, role, email=None, **app_options)``: a client signed in as
    a dashboard user, with an access token of a local OIDC issuer, who is a member of
    ``org_id`` with ``role`` (a member row with only org, email and role, as invites make
    them); with ``org_id`` None, a user who is a member of nothing yet."""
    from tests.api.test_oidc import AUDIENCE, Issuer

    issuer = Issuer(
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
    )
    await issuer.start()

    async def sign_in(
        org_id: str | None, role: str | None, *, email: str | None = None, **app_options: Any
    ) -> ApiClient:
        email = email or f"{role or 'user'}-{uuid.uuid4().hex[:8]}@example.com"
        if org_id is not None:
            await db.execute(
                "INSERT INTO org_members (org_id, email, role) VALUES ($1, $2, $3)",
                uuid.UUID(org_id), email, role,
            )  # fmt: skip
        api_settings = dataclasses.replace(
            app_options.pop("api_settings", ApiSettings()),
            oidc_issuer=issuer.url + "/",
            oidc_audience=AUDIENCE,
        )
        client = await start_api(api_settings=api_settings, **app_options)
        token = issuer.token(sub=f"user|{uuid.uuid4().hex}", email=email, email_verified=True)
        client.operator = {"Authorization": f"Bearer {token}"}
        client.email = email
        return client

    yield sign_in
    await issuer.close()
