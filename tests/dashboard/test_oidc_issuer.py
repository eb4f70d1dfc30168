"""The local OIDC issuer the browser tests sign in with, checked over plain HTTP: the
Authorization Code flow with PKCE, its refusals, and the CORS a browser app needs."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import aiohttp
import jwt
import pytest

from tests.support.oidc_issuer import OidcIssuer, s256

REDIRECT = "http://127.0.0.1:9/auth/callback"


@pytest.fixture
async def issuer() -> AsyncIterator[OidcIssuer]:
    issuer = OidcIssuer(redirect_uris=[REDIRECT])
    await issuer.start()
    yield issuer
    await issuer.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def authorize(
    http: aiohttp.ClientSession, issuer: OidcIssuer, verifier: str, **overrides: str
) -> aiohttp.ClientResponse:
    params = {
        "client_id": issuer.client_id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid email profile",
        "state": "state-123",
        "nonce": "nonce-456",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        "audience": issuer.audience,
        **overrides,
    }
    async with http.get(
        f"{issuer.url}/authorize", params=params, allow_redirects=False
    ) as response:
        await response.read()
        return response


async def code_for(http: aiohttp.ClientSession, issuer: OidcIssuer, verifier: str) -> str:
    response = await authorize(http, issuer, verifier)
    assert response.status == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["state-123"]
    return query["code"][0]


async def exchange(
    http: aiohttp.ClientSession, issuer: OidcIssuer, code: str, verifier: str | None, **extra: str
) -> tuple[int, dict]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": issuer.client_id,
        **extra,
    }
    if verifier is not None:
        form["code_verifier"] = verifier
    async with http.post(f"{issuer.url}/token", data=form) as response:
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        return response.status, await response.json()


def verifier() -> str:
    return secrets.token_urlsafe(48)


async def test_discovery_describes_a_code_flow_with_pkce(
    issuer: OidcIssuer, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{issuer.url}/.well-known/openid-configuration") as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        document = await response.json()
    assert document["issuer"] == issuer.url
    assert document["authorization_endpoint"] == f"{issuer.url}/authorize"
    assert document["token_endpoint"] == f"{issuer.url}/token"
    assert document["userinfo_endpoint"] == f"{issuer.url}/userinfo"
    assert document["response_types_supported"] == ["code"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert "end_session_endpoint" not in document
    async with http.get(document["jwks_uri"]) as response:
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        keys = (await response.json())["keys"]
    assert [(k["kty"], k["kid"], k["use"]) for k in keys] == [("RSA", issuer.kid, "sig")]


async def test_the_right_pkce_verifier_gets_tokens(
    issuer: OidcIssuer, http: aiohttp.ClientSession
) -> None:
    secret = verifier()
    status, body = await exchange(http, issuer, await code_for(http, issuer, secret), secret)

    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] > 0
    key = jwt.PyJWKSet.from_dict(issuer.jwks()).keys[0]
    access = jwt.decode(
        body["access_token"], key, algorithms=["RS256"], audience=issuer.audience, issuer=issuer.url
    )
    assert access["sub"] == issuer.user.sub
    assert access["email"] == issuer.user.email
    assert access["email_verified"] is True
    assert access["exp"] > access["iat"]
    identity = jwt.decode(
        body["id_token"], key, algorithms=["RS256"], audience=issuer.client_id, issuer=issuer.url
    )
    assert identity["nonce"] == "nonce-456"
    assert identity["sub"] == issuer.user.sub
    assert issuer.authorize_requests[-1]["audience"] == issuer.audience

    headers = {"Authorization": f"Bearer {body['access_token']}"}
    async with http.get(f"{issuer.url}/userinfo", headers=headers) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert (await response.json())["email"] == issuer.user.email
    async with http.get(f"{issuer.url}/userinfo", headers={"Authorization": "Bearer x"}) as r:
        assert r.status == 401


@pytest.mark.parametrize("wrong", ["wrong-verifier-0123456789012345678901234567890123", "", None])
async def test_a_wrong_or_missing_verifier_is_invalid_grant(
    issuer: OidcIssuer, http: aiohttp.ClientSession, wrong: str | None
) -> None:
    code = await code_for(http, issuer, verifier())
    status, body = await exchange(http, issuer, code, wrong)
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_a_code_works_once(issuer: OidcIssuer, http: aiohttp.ClientSession) -> None:
    secret = verifier()
    code = await code_for(http, issuer, secret)
    assert (await exchange(http, issuer, code, secret))[0] == 200
    status, body = await exchange(http, issuer, code, secret)
    assert (status, body["error"]) == (400, "invalid_grant")


@pytest.mark.parametrize(
    "extra", [{"redirect_uri": "http://127.0.0.1:9/elsewhere"}, {"client_id": "other"}]
)
async def test_the_code_is_bound_to_its_client_and_redirect_uri(
    issuer: OidcIssuer, http: aiohttp.ClientSession, extra: dict[str, str]
) -> None:
    secret = verifier()
    status, body = await exchange(
        http, issuer, await code_for(http, issuer, secret), secret, **extra
    )
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_other_grant_types_are_refused(
    issuer: OidcIssuer, http: aiohttp.ClientSession
) -> None:
    status, body = await exchange(http, issuer, "x", "y", grant_type="password")
    assert (status, body["error"]) == (400, "unsupported_grant_type")


@pytest.mark.parametrize(
    ("overrides", "status", "error"),
    [
        ({"client_id": "someone-else"}, 400, None),
        ({"redirect_uri": "http://127.0.0.1:9/evil"}, 400, None),
        ({"response_type": "token"}, 302, "unsupported_response_type"),
        ({"code_challenge": ""}, 302, "invalid_request"),
        ({"code_challenge_method": "plain"}, 302, "invalid_request"),
        ({"state": ""}, 302, "invalid_request"),
    ],
)
async def test_authorize_refuses_bad_requests(
    issuer: OidcIssuer,
    http: aiohttp.ClientSession,
    overrides: dict[str, str],
    status: int,
    error: str | None,
) -> None:
    response = await authorize(http, issuer, verifier(), **overrides)
    assert response.status == status
    if error is not None:
        query = parse_qs(urlsplit(response.headers["Location"]).query)
        assert query["error"] == [error]
        assert "code" not in query


async def test_preflights_are_answered_for_the_browser(
    issuer: OidcIssuer, http: aiohttp.ClientSession
) -> None:
    headers = {
        "Origin": "http://127.0.0.1:9",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    for path in ("/token", "/userinfo", "/jwks", "/.well-known/openid-configuration"):
        async with http.options(f"{issuer.url}{path}", headers=headers) as response:
            assert response.status == 204, path
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert "POST" in response.headers["Access-Control-Allow-Methods"]
            assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]


def test_it_serves_from_a_thread_for_synchronous_tests() -> None:
    import urllib.request

    issuer = OidcIssuer()
    discovery = f"{issuer.url}/.well-known/openid-configuration"
    with issuer.serving(), urllib.request.urlopen(discovery) as response:
        assert response.status == 200
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{issuer.url}/jwks", timeout=2)
