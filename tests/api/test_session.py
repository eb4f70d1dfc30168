"""Operators' browser sessions: ``/api/session`` and the cookie in the auth middleware,
end to end against a real app (CSRF, cookie attributes, the shared failure limit,
expiry, sliding renewal and its absolute cap, secret rotation, sign-out)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import Any

import jwt
import pytest

from api.session import ABSOLUTE_MAX_S, COOKIE
from api.settings import ApiSettings
from lectr.settings import DEV_ADMIN_SECRET, Settings, SettingsError
from tests.api.conftest import ApiClient, Reply, StartApi
from tests.api.test_oidc import Clock

MINUTE = 60


@dataclasses.dataclass
class Signed:
    """A browser signed in: its cookie's value and the CSRF token it was given."""

    token: str
    csrf: str
    body: dict[str, Any]


def set_cookie(reply: Reply) -> dict[str, str] | None:
    """The ``lectr_session`` Set-Cookie of ``reply`` as {name: value, attribute: value}
    (flags map to ""), or None when there is none."""
    for header in reply.headers.getall("Set-Cookie", []):
        first, *attributes = (part.strip() for part in header.split(";"))
        name, _, value = first.partition("=")
        if name == COOKIE:
            parsed = {"value": value}
            for attribute in attributes:
                key, _, attribute_value = attribute.partition("=")
                parsed[key.lower()] = attribute_value
            return parsed
    return None


async def sign_in(api: ApiClient, secret: str | None = None) -> Signed:
    reply = await api.call(
        "POST", "/api/session", json={"secret": secret or api.settings.admin_secret},
        anonymous=True,
    )  # fmt: skip
    assert reply.status == 200, reply.body
    cookie = set_cookie(reply)
    assert cookie is not None
    return Signed(cookie["value"], reply.body["csrf_token"], reply.body)


async def with_cookie(
    api: ApiClient, method: str, path: str, token: str, csrf: str | None = None, **options: Any
) -> Reply:
    headers = {"Cookie": f"{COOKIE}={token}"}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    return await api.call(method, path, headers=headers, anonymous=True, **options)


async def org_names(api: ApiClient) -> set[str]:
    reply = await api.call("GET", "/api/orgs")
    return {org["name"] for org in reply.body["orgs"]}


def new_name() -> str:
    return f"session-{uuid.uuid4().hex[:12]}"


# --- signing in and using the cookie ---------------------------------------------------


async def test_a_session_reads_and_writes_with_its_csrf_token(api: ApiClient) -> None:
    signed = await sign_in(api)
    assert signed.body["operator"] is True
    assert signed.csrf and signed.csrf not in signed.token
    datetime.fromisoformat(signed.body["expires_at"])

    me = await with_cookie(api, "GET", "/api/me", signed.token)
    assert me.status == 200, me.body
    assert me.body["operator"] is True
    session = await with_cookie(api, "GET", "/api/session", signed.token)
    assert session.status == 200
    assert session.body == {"session": signed.body}

    name = new_name()
    created = await with_cookie(
        api, "POST", "/api/orgs", signed.token, signed.csrf, json={"name": name}
    )
    assert created.status == 201, created.body
    assert name in await org_names(api)


@pytest.mark.parametrize("csrf", [None, "", "not-the-token", "forged"])
async def test_a_change_by_cookie_without_the_right_csrf_token_is_403(
    api: ApiClient, csrf: str | None
) -> None:
    signed = await sign_in(api)
    if csrf == "forged":  # the token of another session
        csrf = (await sign_in(api)).csrf
    name = new_name()
    reply = await with_cookie(api, "POST", "/api/orgs", signed.token, csrf, json={"name": name})
    assert reply.status == 403
    assert reply.body["error"]["code"] == "csrf_failed"
    assert reply.body["error"]["type"] == "permission_error"
    assert name not in await org_names(api)


async def test_a_bearer_token_needs_no_csrf_token_and_wins_over_a_cookie(
    api: ApiClient,
) -> None:
    reply = await api.call(
        "POST", "/api/orgs", json={"name": new_name()}, headers={"Cookie": f"{COOKIE}=junk"}
    )
    assert reply.status == 201, reply.body


async def test_the_cookie_is_http_only_strict_and_lasts_the_ttl(api: ApiClient) -> None:
    reply = await api.call(
        "POST", "/api/session", json={"secret": api.settings.admin_secret}, anonymous=True
    )
    cookie = set_cookie(reply)
    assert cookie is not None
    assert cookie["httponly"] == ""
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert cookie["max-age"] == str(60 * MINUTE)
    assert "secure" not in cookie  # plain http, and the dashboard URL is http
    assert reply.headers["Cache-Control"] == "no-store"
    claims = jwt.decode(cookie["value"], options={"verify_signature": False})
    assert set(claims) == {"sub", "sid", "iat", "exp", "auth_time"}
    assert claims["sub"] == "operator"
    assert claims["exp"] - claims["iat"] == 60 * MINUTE
    assert len(claims["sid"]) == 32  # 128 bits, hex


async def test_the_cookie_is_secure_when_the_dashboard_is_https(
    start_api: StartApi, lectr_settings: Settings
) -> None:
    settings = dataclasses.replace(lectr_settings, dashboard_url="https://lectr.example.com")
    api = await start_api(settings=settings)
    reply = await api.call(
        "POST", "/api/session", json={"secret": settings.admin_secret}, anonymous=True
    )
    cookie = set_cookie(reply)
    assert cookie is not None and "secure" in cookie


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"secret": "x" * 40}, "unauthorized"),
        ({"secret": "x", "remember": True}, "invalid_request"),
        ({}, "invalid_request"),
        ({"secret": ""}, "invalid_request"),
        ({"secret": 5}, "invalid_request"),
    ],
)
async def test_a_wrong_secret_is_401_and_a_bad_body_400(
    api: ApiClient, body: dict[str, Any], code: str
) -> None:
    reply = await api.call("POST", "/api/session", json=body, anonymous=True)
    assert reply.body["error"]["code"] == code
    assert reply.status == (401 if code == "unauthorized" else 400)
    assert set_cookie(reply) is None


async def test_without_a_cookie_get_session_is_null_and_sign_out_204(api: ApiClient) -> None:
    for _ in range(12):  # no cookie is no guess: never 429
        reply = await api.call("GET", "/api/session", anonymous=True)
        assert (reply.status, reply.body) == (200, {"session": None})
    reply = await api.call("DELETE", "/api/session", anonymous=True)
    assert reply.status == 204
    assert set_cookie(reply) == {
        "value": "", "httponly": "", "samesite": "Strict", "path": "/", "max-age": "0",
    }  # fmt: skip


# --- the failure limit ------------------------------------------------------------------


async def test_ten_wrong_secrets_block_sign_in_and_bearer_tokens(start_api: StartApi) -> None:
    clock = Clock()
    api = await start_api(clock=clock)
    for attempt in range(10):
        clock.now += 1
        reply = await api.call(
            "POST", "/api/session", json={"secret": f"guess-{attempt}"}, anonymous=True
        )
        assert reply.status == 401, attempt
    right = {"secret": api.settings.admin_secret}
    reply = await api.call("POST", "/api/session", json=right, anonymous=True)
    assert reply.status == 429
    assert reply.body["error"]["code"] == "too_many_attempts"
    assert reply.headers["Retry-After"] == "51"
    assert (await api.call("GET", "/api/me")).status == 429  # the operator's bearer too

    clock.now += 51
    assert (await api.call("POST", "/api/session", json=right, anonymous=True)).status == 200


async def test_wrong_bearer_tokens_block_sign_in(start_api: StartApi) -> None:
    api = await start_api(clock=Clock())
    for attempt in range(10):
        bearer = {"Authorization": f"Bearer guess-{attempt}"}
        assert (await api.call("GET", "/api/me", headers=bearer)).status == 401
    right = {"secret": api.settings.admin_secret}
    reply = await api.call("POST", "/api/session", json=right, anonymous=True)
    assert reply.status == 429
    assert "Retry-After" in reply.headers


@pytest.mark.parametrize("path", ["/api/me", "/api/session"])
async def test_forged_cookies_are_401_clear_the_cookie_and_count(
    start_api: StartApi, path: str
) -> None:
    api = await start_api(clock=Clock())
    signed = await sign_in(api)
    claims = jwt.decode(signed.token, options={"verify_signature": False})
    forged = [
        jwt.encode(claims, "a-guessed-key-that-is-at-least-32-bytes", algorithm="HS256"),
        jwt.encode(claims, key="", algorithm="none"),
        signed.token[:-2] + ("AA" if not signed.token.endswith("AA") else "BB"),
        "not-a-jwt",
    ]
    for attempt in range(10):
        reply = await with_cookie(api, "GET", path, forged[attempt % len(forged)])
        assert reply.status == 401, attempt
        assert reply.body["error"]["code"] == "unauthorized"
        cleared = set_cookie(reply)
        assert cleared is not None and cleared["max-age"] == "0"
    reply = await with_cookie(api, "GET", path, signed.token)
    assert reply.status == 429  # even the real session waits out the minute


# --- expiry, renewal, rotation ----------------------------------------------------------


async def test_a_session_expires_after_its_ttl(start_api: StartApi) -> None:
    clock = Clock()
    api = await start_api(clock=clock, api_settings=ApiSettings(session_ttl_min=10))
    signed = await sign_in(api)
    clock.now += 10 * MINUTE - 1
    assert (await with_cookie(api, "GET", "/api/me", signed.token)).status == 200
    clock.now += 1
    reply = await with_cookie(api, "GET", "/api/me", signed.token)
    assert reply.status == 401
    assert (await with_cookie(api, "GET", "/api/session", signed.token)).status == 401


async def test_a_session_slides_when_half_its_ttl_is_gone(start_api: StartApi) -> None:
    clock = Clock()
    api = await start_api(clock=clock, api_settings=ApiSettings(session_ttl_min=60))
    signed = await sign_in(api)

    clock.now += 29 * MINUTE  # 31 minutes left: no renewal
    reply = await with_cookie(api, "GET", "/api/me", signed.token)
    assert reply.status == 200
    assert set_cookie(reply) is None

    clock.now += 2 * MINUTE  # 29 minutes left: renewed, same sid
    reply = await with_cookie(api, "GET", "/api/me", signed.token)
    renewed = set_cookie(reply)
    assert renewed is not None and renewed["max-age"] == str(60 * MINUTE)
    assert renewed["httponly"] == "" and renewed["samesite"] == "Strict"
    old = jwt.decode(signed.token, options={"verify_signature": False})
    new = jwt.decode(renewed["value"], options={"verify_signature": False})
    assert new["sid"] == old["sid"] and new["auth_time"] == old["auth_time"]
    assert new["exp"] == old["exp"] + 31 * MINUTE

    clock.now += 45 * MINUTE  # past the old cookie's end, not the new one's
    assert (await with_cookie(api, "GET", "/api/me", signed.token)).status == 401
    # The CSRF token stays valid: it is bound to the sid.
    reply = await with_cookie(
        api, "POST", "/api/orgs", renewed["value"], signed.csrf, json={"name": new_name()}
    )
    assert reply.status == 201, reply.body
    # GET /api/session renews too, and says until when.
    session = await with_cookie(api, "GET", "/api/session", renewed["value"])
    assert session.status == 200
    assert session.body["session"]["csrf_token"] == signed.csrf
    assert set_cookie(session) is not None
    assert session.body["session"]["expires_at"] != signed.body["expires_at"]


async def test_no_session_outlives_twelve_hours_after_signing_in(start_api: StartApi) -> None:
    clock = Clock()
    api = await start_api(clock=clock, api_settings=ApiSettings(session_ttl_min=10 * 60))
    signed = await sign_in(api)
    start = clock.now

    clock.now = start + 6 * 3600  # 4 h left of 10: renewed, but only up to 12 h
    renewed = set_cookie(await with_cookie(api, "GET", "/api/me", signed.token))
    assert renewed is not None
    assert renewed["max-age"] == str(6 * 3600)
    claims = jwt.decode(renewed["value"], options={"verify_signature": False})
    assert claims["exp"] == start + ABSOLUTE_MAX_S

    clock.now = start + 9 * 3600  # at the cap already: nothing to renew
    reply = await with_cookie(api, "GET", "/api/me", renewed["value"])
    assert reply.status == 200
    assert set_cookie(reply) is None
    clock.now = start + ABSOLUTE_MAX_S
    assert (await with_cookie(api, "GET", "/api/me", renewed["value"])).status == 401


async def test_a_ttl_over_twelve_hours_is_capped(start_api: StartApi) -> None:
    api = await start_api(clock=Clock(), api_settings=ApiSettings(session_ttl_min=24 * 60))
    reply = await api.call(
        "POST", "/api/session", json={"secret": api.settings.admin_secret}, anonymous=True
    )
    cookie = set_cookie(reply)
    assert cookie is not None and cookie["max-age"] == str(ABSOLUTE_MAX_S)


async def test_a_new_admin_secret_signs_every_session_out(
    start_api: StartApi, lectr_settings: Settings
) -> None:
    clock = Clock()
    signed = await sign_in(await start_api(clock=clock))
    # Sessions need no server-side state: a restart with the same secret keeps them.
    same = await start_api(clock=clock)
    assert (await with_cookie(same, "GET", "/api/me", signed.token)).status == 200
    rotated = dataclasses.replace(lectr_settings, admin_secret="a-new-admin-secret-" + "9" * 20)
    api = await start_api(settings=rotated, clock=clock)
    assert (await with_cookie(api, "GET", "/api/me", signed.token)).status == 401
    assert (await with_cookie(api, "GET", "/api/session", signed.token)).status == 401


# --- signing out ------------------------------------------------------------------------


async def test_sign_out_clears_the_cookie_and_needs_the_csrf_token(api: ApiClient) -> None:
    signed = await sign_in(api)
    refused = await with_cookie(api, "DELETE", "/api/session", signed.token)
    assert refused.status == 403
    assert refused.body["error"]["code"] == "csrf_failed"
    assert set_cookie(refused) is None

    reply = await with_cookie(api, "DELETE", "/api/session", signed.token, signed.csrf)
    assert reply.status == 204
    cleared = set_cookie(reply)
    assert cleared is not None and cleared["value"] == "" and cleared["max-age"] == "0"
    # Signing out is the browser forgetting its cookie: nothing is kept server-side, so
    # a copy taken before stays valid until its exp (LECTR_SESSION_TTL_MIN bounds it).
    assert (await with_cookie(api, "GET", "/api/me", signed.token)).status == 200
    # Signing out twice is fine, and a cookie that is no session is just cleared.
    assert (await api.call("DELETE", "/api/session", anonymous=True)).status == 204
    junk = await with_cookie(api, "DELETE", "/api/session", "not-a-jwt")
    assert junk.status == 204
    assert set_cookie(junk) is not None


async def test_an_expired_session_signs_out_with_its_csrf_token(start_api: StartApi) -> None:
    clock = Clock()
    api = await start_api(clock=clock, api_settings=ApiSettings(session_ttl_min=1))
    signed = await sign_in(api)
    clock.now += 3600
    reply = await with_cookie(api, "DELETE", "/api/session", signed.token, signed.csrf)
    assert reply.status == 204


# --- operator sign-in off --------------------------------------------------------------


async def test_operator_api_off_refuses_sign_in_and_cookies(start_api: StartApi) -> None:
    clock = Clock()
    signed = await sign_in(await start_api(clock=clock))
    api = await start_api(clock=clock, api_settings=ApiSettings(operator_api=False))
    reply = await api.call(
        "POST", "/api/session", json={"secret": api.settings.admin_secret}, anonymous=True
    )
    assert reply.status == 403
    assert reply.body["error"]["code"] == "forbidden"
    assert "operator sign-in is off" in reply.body["error"]["message"]
    assert (await with_cookie(api, "GET", "/api/me", signed.token)).status == 401
    assert (await with_cookie(api, "GET", "/api/session", signed.token)).status == 401


async def test_the_development_secret_cannot_sign_in_in_production(
    start_api: StartApi, lectr_settings: Settings
) -> None:
    dev = dataclasses.replace(lectr_settings, admin_secret=DEV_ADMIN_SECRET)
    api = await start_api(settings=dev, api_settings=ApiSettings(env="production"))
    reply = await api.call(
        "POST", "/api/session", json={"secret": DEV_ADMIN_SECRET}, anonymous=True
    )
    assert reply.status == 403
    development = await start_api(settings=dev)
    assert (await sign_in(development, DEV_ADMIN_SECRET)).body["operator"] is True


def test_session_ttl_is_read_from_the_environment() -> None:
    assert ApiSettings().session_ttl_min == 60
    assert ApiSettings.from_env({"LECTR_SESSION_TTL_MIN": "15"}).session_ttl_min == 15
    for bad in ("0", "-5", "soon"):
        with pytest.raises(SettingsError, match="LECTR_SESSION_TTL_MIN"):
            ApiSettings.from_env({"LECTR_SESSION_TTL_MIN": bad})
