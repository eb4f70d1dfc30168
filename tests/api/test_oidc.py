"""Dashboard users' access tokens, verified against a local OIDC issuer the test starts.

The issuer serves discovery, a JWKS (counting fetches) and userinfo; test keys (RSA and
EC) are generated at test time. Every bad token goes through the real auth middleware
and must answer 401 without echoing the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from api.access import caller_of, require
from api.auth import auth_middleware
from api.caller import Caller
from api.errors import ApiError
from api.settings import ApiSettings
from lectr.db import asyncpg_dsn
from lectr.settings import Settings

AUDIENCE = "https://api.lectr.test"
ADMIN_SECRET = "operator-secret-for-tests-0123456789"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Issuer:
    """A local OIDC issuer: discovery, JWKS and userinfo on 127.0.0.1."""

    def __init__(self, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> None:
        self.rsa_key = rsa_key
        self.ec_key = ec_key
        self.published = {"rsa-1": rsa_key, "ec-1": ec_key}  # kid -> private key
        self.jwks_fetches = 0
        self.jwks_down = False
        self.emails: dict[str, str] = {}  # sub -> what userinfo answers
        self.userinfo_calls = 0
        self.server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/")).rstrip("/")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/userinfo", self._userinfo)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.url + "/",
                "jwks_uri": self.url + "/jwks",
                "userinfo_endpoint": self.url + "/userinfo",
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        if self.jwks_down:
            return web.Response(status=503)
        keys = []
        for kid, private in self.published.items():
            jwk = json.loads(
                jwt.algorithms.get_default_algorithms()[_alg(private)].to_jwk(private.public_key())
            )
            keys.append({**jwk, "kid": kid, "use": "sig"})
        return web.json_response({"keys": keys})

    async def _userinfo(self, request: web.Request) -> web.Response:
        self.userinfo_calls += 1
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        sub = jwt.decode(token, options={"verify_signature": False})["sub"]
        if sub not in self.emails:
            return web.Response(status=401)
        return web.json_response({"sub": sub, "email": self.emails[sub], "email_verified": True})

    def token(
        self,
        *,
        kid: str = "rsa-1",
        key: Any = None,
        alg: str | None = None,
        iss: str | None = None,
        **claims: Any,
    ) -> str:
        """A token signed with the key published as ``kid`` (or ``key``); ``claims``
        override the defaults (a value of None removes the claim)."""
        private = key if key is not None else self.published.get(kid, self.rsa_key)
        now = int(time.time())
        payload = {
            "iss": iss if iss is not None else self.url + "/",
            "aud": [AUDIENCE, self.url + "/userinfo"],
            "sub": "user|default",
            "iat": now,
            "exp": now + 300,
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, private, algorithm=alg or _alg(private), headers={"kid": kid})


def _alg(private: Any) -> str:
    return "ES256" if isinstance(private, ec.EllipticCurvePrivateKey) else "RS256"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
async def issuer(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey):
    server = Issuer(rsa_key, ec_key)
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(asyncpg_dsn(database_url), min_size=1, max_size=2) as p:
        yield p


def caller_json(caller: Caller) -> dict[str, Any]:
    return {
        "operator": caller.operator,
        "subject": caller.subject,
        "email": caller.email,
        "orgs": {str(org): m.role for org, m in caller.memberships.items()},
    }


@web.middleware
async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """What the app's error middleware does with an ApiError (the test app has no other)."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()


async def whoami(request: web.Request) -> web.Response:
    return web.json_response(caller_json(caller_of(request)))


async def org_role(request: web.Request) -> web.Response:
    org_id = uuid.UUID(request.match_info["org"])
    role = await require(request, org_id, request.match_info["minimum"])
    return web.json_response({"role": role})


async def public(request: web.Request) -> web.Response:
    return web.json_response({"public": True})


class Apps:
    """Builds tiny apps (error + auth middleware, ``/whoami``, ``/orgs/{org}/{minimum}``
    calling ``require``, public ``/public``) served on 127.0.0.1, and closes them."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.clients: list[TestClient] = []

    async def client(
        self, *, settings: Settings | None = None, clock: Clock | None = None, **api: Any
    ) -> TestClient:
        app = web.Application(
            middlewares=[
                errors,
                auth_middleware(
                    settings or Settings(admin_secret=ADMIN_SECRET),
                    ApiSettings(**api),
                    self.pool,
                    is_public=lambda request: request.path == "/public",
                    clock=clock or Clock(),
                ),
            ]
        )
        app.router.add_get("/whoami", whoami)
        app.router.add_get("/orgs/{org}/{minimum}", org_role)
        app.router.add_get("/public", public)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


@pytest.fixture
async def apps(pool: asyncpg.Pool) -> AsyncIterator[Apps]:
    built = Apps(pool)
    yield built
    await built.close()


@pytest.fixture
async def oidc_client(apps: Apps, issuer: Issuer) -> tuple[TestClient, Clock]:
    """A client of an app trusting ``issuer`` (configured with its trailing slash, as
    Auth0 publishes it), and the clock it runs on."""
    clock = Clock()
    client = await apps.client(clock=clock, oidc_issuer=issuer.url + "/", oidc_audience=AUDIENCE)
    return client, clock


async def get_as(client: TestClient, token: str, path: str = "/whoami") -> Any:
    return await client.get(path, headers={"Authorization": f"Bearer {token}"})


async def test_valid_rs256_and_es256_tokens_sign_in(oidc_client, issuer: Issuer) -> None:
    client, _ = oidc_client
    for kid in ("rsa-1", "ec-1"):
        response = await get_as(client, issuer.token(kid=kid, sub=f"user|{kid}"))
        assert response.status == 200, kid
        assert (await response.json())["subject"] == f"user|{kid}"
    assert issuer.jwks_fetches == 1  # the key set is cached


def _bad_tokens(issuer: Issuer) -> dict[str, str]:
    now = int(time.time())
    public_pem = issuer.rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    good = issuer.token()
    head, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered = _b64(json.dumps({**claims, "sub": "user|admin"}).encode())
    unsigned_payload = _b64(json.dumps(claims).encode())
    none_header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "rsa-1"}).encode())
    return {
        "expired": issuer.token(iat=now - 3600, exp=now - 600),
        "not yet valid": issuer.token(nbf=now + 600),
        "issued in the future": issuer.token(iat=now + 600),
        "wrong audience": issuer.token(aud="https://other.api"),
        "wrong issuer": issuer.token(iss="https://evil.example/"),
        "issuer without its trailing slash": issuer.token(iss=issuer.url),
        "alg none": f"{none_header}.{unsigned_payload}.",
        "HS256 signed with the public key PEM": _hs256_with(public_pem, claims),
        "tampered payload": f"{head}.{tampered}.{signature}",
        "missing sub": issuer.token(sub=None),
        "missing exp": issuer.token(exp=None),
        "signed by a key the issuer does not publish": issuer.token(
            kid="ec-1", key=ec.generate_private_key(ec.SECP256R1())
        ),
        "not a JWT": "definitely-not-a-jwt",
    }


def _hs256_with(secret: bytes, claims: dict[str, Any]) -> str:
    """An HS256 token keyed with the public key's PEM (PyJWT refuses to sign that, so
    sign by hand): the classic algorithm-confusion attack."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    payload = _b64(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(mac)}"


async def test_bad_tokens_are_401_without_echoing_them(oidc_client, issuer: Issuer) -> None:
    client, clock = oidc_client
    assert (await get_as(client, issuer.token())).status == 200  # the issuer works
    for case, token in _bad_tokens(issuer).items():
        clock.now += 61  # past the failure limit's minute
        response = await get_as(client, token)
        body = await response.text()
        assert response.status == 401, case
        assert json.loads(body)["error"]["code"] == "unauthorized", case
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), case
        assert token not in body, case


async def test_unknown_kid_refetches_once_a_minute(oidc_client, issuer: Issuer) -> None:
    client, clock = oidc_client
    assert (await get_as(client, issuer.token())).status == 200
    assert issuer.jwks_fetches == 1

    clock.now += 61
    new_key = ec.generate_private_key(ec.SECP256R1())
    unknown = issuer.token(kid="rotated-1", key=new_key)
    assert (await get_as(client, unknown)).status == 401
    assert issuer.jwks_fetches == 2  # one refetch, the kid still unknown
    other = issuer.token(kid="rotated-2", key=new_key)
    assert (await get_as(client, other)).status == 401
    assert issuer.jwks_fetches == 2  # within the minute: no second refetch

    # The issuer rotates its keys in: a minute later the new kid works.
    issuer.published["rotated-1"] = new_key
    clock.now += 30
    assert (await get_as(client, unknown)).status == 401
    assert issuer.jwks_fetches == 2
    clock.now += 31
    assert (await get_as(client, unknown)).status == 200
    assert issuer.jwks_fetches == 3


async def test_jwks_down_is_401_not_500(oidc_client, issuer: Issuer) -> None:
    client, clock = oidc_client
    issuer.jwks_down = True
    assert (await get_as(client, issuer.token())).status == 401
    issuer.jwks_down = False
    clock.now += 6  # a failed fetch is retried after a few seconds
    assert (await get_as(client, issuer.token())).status == 200


async def test_issuer_unreachable_is_401(apps: Apps, issuer: Issuer) -> None:
    url = issuer.url
    token = issuer.token()
    await issuer.close()  # nothing listens there any more
    client = await apps.client(oidc_issuer=url + "/", oidc_audience=AUDIENCE)
    response = await get_as(client, token)
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"


async def test_no_issuer_configured_refuses_tokens_but_not_operators(
    apps: Apps, issuer: Issuer
) -> None:
    client = await apps.client()
    assert (await get_as(client, issuer.token())).status == 401
    assert (await get_as(client, ADMIN_SECRET)).status == 200
    assert issuer.jwks_fetches == 0


async def test_exact_issuer_without_trailing_slash(apps: Apps, issuer: Issuer) -> None:
    """An issuer configured without a trailing slash accepts exactly that ``iss``."""
    client = await apps.client(oidc_issuer=issuer.url, oidc_audience=AUDIENCE)
    assert (await get_as(client, issuer.token(iss=issuer.url))).status == 200
    assert (await get_as(client, issuer.token(iss=issuer.url + "/"))).status == 401


async def test_settings_from_env() -> None:
    api = ApiSettings.from_env(
        {
            "LECTR_ENV": "production",
            "LECTR_OPERATOR_API": "off",
            "LECTR_OIDC_ISSUER": "https://tenant.auth0.com/",
            "LECTR_OIDC_AUDIENCE": "https://api.lectr.example",
        }
    )
    assert api.production and not api.operator_api
    assert api.oidc_issuer == "https://tenant.auth0.com/"  # kept exactly, slash and all
    assert ApiSettings.from_env({}) == ApiSettings()
    with pytest.raises(ValueError, match="LECTR_OIDC_AUDIENCE"):
        ApiSettings.from_env({"LECTR_OIDC_ISSUER": "https://tenant.auth0.com/"})
    with pytest.raises(ValueError, match="LECTR_OPERATOR_API"):
        ApiSettings.from_env({"LECTR_OPERATOR_API": "maybe"})
