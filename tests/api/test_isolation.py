"""Isolation across the whole router, by walking the route table at run time (so routes
added later are covered without touching this file): another org's routes are 404 for
a member of one org, every write is 403 for a viewer, every non-public route is 401
without credentials, and operator routes are 403 for dashboard users.

Path parameters other than ``{org}`` get random UUIDs and writes send ``{}``: the role
check (``api.app.guarded``) runs before the handler looks at ids or the body, so the
answer depends on the caller alone.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from api.app import ALL_ROUTES, create_app
from api.routes_table import Route
from api.settings import ApiSettings
from lectr.members import ROLE_RANK
from lectr.settings import Settings
from tests.api.conftest import ApiClient, Reply, StartApi
from tests.api.test_oidc import AUDIENCE, Issuer

_PARAM = re.compile(r"\{(\w+)\}")


def org_scoped(route: Route) -> bool:
    return "{org}" in route.path


def url(route: Route, org: str) -> str:
    """The route's path with ``org`` as its org and random UUIDs for other ids."""
    return _PARAM.sub(lambda m: org if m[1] == "org" else str(uuid.uuid4()), route.path)


async def send(client: ApiClient, route: Route, org: str, token: str | None) -> Reply:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return await client.call(
        route.method,
        url(route, org),
        json=None if route.method == "GET" else {},
        headers=headers,
        anonymous=token is None,
    )


@dataclasses.dataclass
class World:
    """Org A with an OIDC user per role, org B, and an app that accepts their tokens."""

    client: ApiClient
    org_a: str
    org_b: str
    tokens: dict[str, str]  # role in org A -> access token


@pytest.fixture
async def world(
    start_api: StartApi, api: ApiClient, db: asyncpg.Connection
) -> AsyncIterator[World]:
    issuer = Issuer(
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
    )
    await issuer.start()
    try:
        org_a, org_b = (await api.make_org())["id"], (await api.make_org())["id"]
        tokens = {}
        for role in ROLE_RANK:
            email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
            await db.execute(
                "INSERT INTO org_members (org_id, email, role) VALUES ($1, $2, $3)",
                uuid.UUID(org_a), email, role,
            )  # fmt: skip
            tokens[role] = issuer.token(
                sub=f"user|{uuid.uuid4().hex}", email=email, email_verified=True
            )
        client = await start_api(
            api_settings=ApiSettings(oidc_issuer=issuer.url + "/", oidc_audience=AUDIENCE)
        )
        yield World(client, org_a, org_b, tokens)
    finally:
        await issuer.close()


def test_the_table_is_the_router_and_org_routes_check_a_role() -> None:
    app = create_app(Settings(), ApiSettings(), pool=None)  # type: ignore[arg-type]
    served = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.method != "HEAD" and isinstance(r.resource, web.AbstractResource)
    }
    assert served == {(r.method, r.path) for r in ALL_ROUTES}
    assert any(org_scoped(r) and r.method != "GET" for r in ALL_ROUTES), "nothing to check"
    # A route under an org that any signed-in caller may use would skip the membership check.
    loose = [r.path for r in ALL_ROUTES if org_scoped(r) and r.auth not in (*ROLE_RANK, "operator")]
    assert loose == []


@pytest.mark.parametrize("role", ["viewer", "owner"])
async def test_a_member_of_org_a_gets_404_on_every_route_of_org_b(world: World, role: str) -> None:
    unexpected = []
    for route in ALL_ROUTES:
        if not org_scoped(route) or route.auth == "operator":
            continue  # operator routes are 403 for every dashboard user, whatever the org
        reply = await send(world.client, route, world.org_b, world.tokens[role])
        if reply.status != 404:
            unexpected.append((route.method, route.path, reply.status, reply.body))
    assert unexpected == []


async def test_a_viewer_gets_403_for_every_write_and_never_a_5xx(world: World) -> None:
    unexpected = []
    for route in ALL_ROUTES:
        if route.auth == "public":
            continue
        reply = await send(world.client, route, world.org_a, world.tokens["viewer"])
        write = org_scoped(route) and route.method != "GET"
        if reply.status >= 500 or (write and reply.status != 403):
            unexpected.append((route.method, route.path, reply.status, reply.body))
        elif route.auth == "viewer" and reply.status == 403:
            unexpected.append((route.method, route.path, reply.status, "a viewer may read"))
    assert unexpected == []


async def test_every_non_public_route_is_401_without_credentials(world: World) -> None:
    unexpected = []
    for route in ALL_ROUTES:
        reply = await send(world.client, route, world.org_a, None)
        if route.auth == "public":
            assert reply.status < 500, (route, reply.status)
        elif reply.status != 401 or reply.body["error"]["code"] != "unauthorized":
            unexpected.append((route.method, route.path, reply.status))
    assert unexpected == []


@pytest.mark.parametrize("role", ["member", "owner"])
async def test_operator_routes_are_403_for_dashboard_users(world: World, role: str) -> None:
    operator_routes = [r for r in ALL_ROUTES if r.auth == "operator"]
    assert operator_routes
    unexpected = []
    for route in operator_routes:
        reply = await send(world.client, route, world.org_a, world.tokens[role])
        if reply.status != 403:
            unexpected.append((route.method, route.path, reply.status))
    assert unexpected == []
