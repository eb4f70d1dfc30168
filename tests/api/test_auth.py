"""The auth middleware end to end: operators, the failure limit, dashboard users'
first sign-in (member rows made with only org, email and role), and ``require``.

Apps, the local OIDC issuer and test keys come from :mod:`tests.api.test_oidc`.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from api.auth import FailureLimiter
from api.settings import ApiSettings
from lectr.db import asyncpg_dsn
from lectr.mail import MailSettings
from lectr.orgs import create_org
from lectr.settings import DEV_ADMIN_SECRET, DEV_KEY_PEPPER, Settings
from tests.api.test_oidc import ADMIN_SECRET, AUDIENCE, Apps, Clock, Issuer, get_as


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
async def issuer(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> AsyncIterator[Issuer]:
    server = Issuer(rsa_key, ec_key)
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(asyncpg_dsn(database_url), min_size=1, max_size=2) as p:
        yield p


@pytest.fixture
async def apps(pool: asyncpg.Pool) -> AsyncIterator[Apps]:
    built = Apps(pool)
    yield built
    await built.close()


@pytest.fixture
async def users(apps: Apps, issuer: Issuer) -> TestClient:
    """A client of an app that trusts ``issuer`` and knows the operator secret."""
    return await apps.client(oidc_issuer=issuer.url + "/", oidc_audience=AUDIENCE)


async def new_org(pool: asyncpg.Pool) -> uuid.UUID:
    async with pool.acquire() as conn:
        issued = await create_org(conn, f"auth-{uuid.uuid4().hex[:8]}", pepper=DEV_KEY_PEPPER)
    return issued.org_id


async def add_member(pool: asyncpg.Pool, org_id: uuid.UUID, email: str, role: str) -> None:
    """A member row as ``lectr`` and invites make it: org, email and role, no subject."""
    await pool.execute(
        "INSERT INTO org_members (org_id, email, role) VALUES ($1, $2, $3)", org_id, email, role
    )


async def subjects(pool: asyncpg.Pool, email: str) -> list[str | None]:
    rows = await pool.fetch("SELECT oidc_subject FROM org_members WHERE email = $1", email)
    return [row["oidc_subject"] for row in rows]


def unique_email() -> str:
    return f"user-{uuid.uuid4().hex[:8]}@Example.com"


# --- operators -------------------------------------------------------------------------


async def test_operator_secret_signs_in_and_wrong_secret_is_401(apps: Apps) -> None:
    client = await apps.client()
    response = await get_as(client, ADMIN_SECRET)
    assert response.status == 200
    assert (await response.json())["operator"] is True

    wrong = ADMIN_SECRET[:-1] + "x"
    response = await get_as(client, wrong)
    body = await response.text()
    assert response.status == 401
    assert wrong not in body
    assert '"code":"unauthorized"' in body


async def test_missing_or_malformed_authorization_is_401(apps: Apps) -> None:
    client = await apps.client()
    for headers in ({}, {"Authorization": ADMIN_SECRET}, {"Authorization": "Basic abc"}):
        response = await client.get("/whoami", headers=headers)
        assert response.status == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await client.get("/public")).status == 200  # public routes need nothing


async def test_dev_default_secret_refused_in_production(apps: Apps) -> None:
    dev = Settings()  # the development default admin secret
    assert dev.admin_secret == DEV_ADMIN_SECRET
    production = await apps.client(settings=dev, env="production")
    assert (await get_as(production, DEV_ADMIN_SECRET)).status == 401
    development = await apps.client(settings=dev)
    assert (await get_as(development, DEV_ADMIN_SECRET)).status == 200
    # A real secret works in production.
    real = await apps.client(env="production")
    assert (await get_as(real, ADMIN_SECRET)).status == 200


async def test_problems_warn_about_the_dev_secret_in_production() -> None:
    problems = ApiSettings(env="production").problems(Settings())
    assert any("LECTR_ADMIN_SECRET" in p and "refused" in p for p in problems)
    assert ApiSettings(env="production", operator_api=False).problems(Settings()) == [
        "LECTR_OIDC_ISSUER is not set: dashboard users cannot sign in",
        "LECTR_SMTP_URL is not set: invites cannot be sent",
    ]


def test_problems_with_mail_set_still_check_the_issuer() -> None:
    mail = MailSettings(url="smtp://127.0.0.1:2525")
    real = Settings(admin_secret=ADMIN_SECRET)
    production = ApiSettings(env="production", mail=mail)
    assert production.problems(real) == [
        "LECTR_OIDC_ISSUER is not set: dashboard users cannot sign in"
    ]
    plain = dataclasses.replace(production, oidc_issuer="http://idp.test/", oidc_audience="a")
    assert plain.problems(real) == [
        "LECTR_OIDC_ISSUER is not https: its keys can be tampered with in transit"
    ]


async def test_operator_api_off_refuses_the_right_secret(apps: Apps) -> None:
    client = await apps.client(operator_api=False)
    assert (await get_as(client, ADMIN_SECRET)).status == 401


async def test_eleventh_failure_in_a_minute_is_429_until_the_minute_is_over(
    apps: Apps,
) -> None:
    clock = Clock()
    client = await apps.client(clock=clock)
    for attempt in range(10):
        clock.now += 1
        assert (await get_as(client, f"guess-{attempt}")).status == 401, attempt
    response = await get_as(client, "guess-11")
    assert response.status == 429
    assert (await response.json())["error"]["code"] == "too_many_attempts"
    assert response.headers["Retry-After"] == "51"  # the first failure was 9 s ago
    # Blocked means blocked: even the right secret waits, so guessing cannot go on.
    assert (await get_as(client, ADMIN_SECRET)).status == 429
    assert (await client.get("/public")).status == 200

    clock.now += 50
    assert (await get_as(client, ADMIN_SECRET)).status == 429
    clock.now += 1  # the minute that started with the first failure is over
    assert (await get_as(client, ADMIN_SECRET)).status == 200
    assert (await get_as(client, "guess-12")).status == 401


async def test_failure_limit_memory_is_bounded() -> None:
    clock = Clock()
    limiter = FailureLimiter(clock, max_addresses=100)
    for n in range(1000):
        limiter.fail(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter._windows) == 100
    for _ in range(10):
        limiter.fail("192.0.2.1")
    assert limiter.retry_after_s("192.0.2.1") == 60


# --- dashboard users -------------------------------------------------------------------


async def test_first_sign_in_by_email_claim_records_the_subject(
    users: TestClient, issuer: Issuer, pool: asyncpg.Pool
) -> None:
    org_id = await new_org(pool)
    email = unique_email()
    await add_member(pool, org_id, email, "admin")
    token = issuer.token(sub="auth0|alice", email=email.lower(), email_verified=True)

    response = await get_as(users, token)
    assert response.status == 200
    assert (await response.json())["orgs"] == {str(org_id): "admin"}
    assert await subjects(pool, email) == ["auth0|alice"]

    # Next time the subject alone finds her, even with no email in the token.
    response = await get_as(users, issuer.token(sub="auth0|alice"))
    assert (await response.json())["orgs"] == {str(org_id): "admin"}


async def test_sign_in_by_userinfo_when_the_token_has_no_email(
    users: TestClient, issuer: Issuer, pool: asyncpg.Pool
) -> None:
    org_id = await new_org(pool)
    email = unique_email()
    await add_member(pool, org_id, email, "viewer")
    issuer.emails["auth0|bob"] = email.upper()

    response = await get_as(users, issuer.token(sub="auth0|bob"))
    assert response.status == 200
    assert (await response.json())["orgs"] == {str(org_id): "viewer"}
    assert issuer.userinfo_calls == 1
    assert await subjects(pool, email) == ["auth0|bob"]


async def test_email_does_not_take_over_a_row_bound_to_another_subject(
    users: TestClient, issuer: Issuer, pool: asyncpg.Pool
) -> None:
    org_id = await new_org(pool)
    email = unique_email()
    await add_member(pool, org_id, email, "owner")
    assert (await get_as(users, issuer.token(sub="auth0|real", email=email))).status == 200

    response = await get_as(users, issuer.token(sub="auth0|impostor", email=email))
    assert (await response.json())["orgs"] == {}
    unverified = issuer.token(sub="auth0|other", email=email, email_verified=False)
    assert (await (await get_as(users, unverified)).json())["orgs"] == {}
    assert await subjects(pool, email) == ["auth0|real"]


async def test_valid_token_without_membership_is_signed_in_with_no_orgs(
    users: TestClient, issuer: Issuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    email = unique_email()
    token = issuer.token(sub="auth0|nobody", email=email)
    response = await get_as(users, token)
    assert response.status == 200
    assert await response.json() == {
        "operator": False,
        "subject": "auth0|nobody",
        "email": email,
        "orgs": {},
    }
    assert token not in caplog.text


# --- require ---------------------------------------------------------------------------


async def test_require_roles_and_orgs(
    users: TestClient, issuer: Issuer, pool: asyncpg.Pool
) -> None:
    mine, other = await new_org(pool), await new_org(pool)
    email = unique_email()
    await add_member(pool, mine, email, "viewer")
    await add_member(pool, other, unique_email(), "owner")
    token = issuer.token(sub=f"auth0|{uuid.uuid4().hex}", email=email)
    missing = uuid.uuid4()

    async def status(org: uuid.UUID, minimum: str, as_token: str = token) -> tuple[int, str]:
        response = await get_as(users, as_token, f"/orgs/{org}/{minimum}")
        body = await response.json()
        return response.status, body.get("role") or body["error"]["code"]

    assert await status(mine, "viewer") == (200, "viewer")
    assert await status(mine, "admin") == (403, "forbidden")
    assert await status(other, "viewer") == (404, "not_found")
    assert await status(missing, "viewer") == (404, "not_found")
    assert await status(mine, "owner", ADMIN_SECRET) == (200, "owner")
    assert await status(other, "admin", ADMIN_SECRET) == (200, "owner")
    assert await status(missing, "viewer", ADMIN_SECRET) == (404, "not_found")
