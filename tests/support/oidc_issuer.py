"""A local OIDC issuer speaking the real protocol, for tests that sign in through a browser.

Authorization Code with PKCE (S256 only), on 127.0.0.1 at a free port:

- ``/.well-known/openid-configuration``: discovery (no ``end_session_endpoint``);
- ``/jwks``: the RSA signing key, generated at start;
- ``/authorize``: checks ``client_id``, ``redirect_uri`` (registered exactly),
  ``response_type=code``, ``code_challenge`` with ``code_challenge_method=S256`` and
  ``state``, then "logs in" :attr:`OidcIssuer.user` without a form: 302 to the
  ``redirect_uri`` with ``code`` and ``state``;
- ``/token``: ``grant_type=authorization_code``; the code (single use, 60 s), its
  ``redirect_uri`` and ``client_id``, and the PKCE verifier
  (``base64url(SHA256(code_verifier)) == code_challenge``) are checked; any mismatch is
  400 ``invalid_grant`` (``invalid_request`` / ``unsupported_grant_type`` for a malformed
  request). Answers an RS256 ``access_token`` (``aud`` = the configured audience) and an
  ``id_token`` (``aud`` = the client id, ``nonce`` when one was asked for);
- ``/userinfo``: the user's claims for a valid access token.

Every endpoint but ``/authorize`` (a top-level navigation) sends
``Access-Control-Allow-Origin: *`` and answers ``OPTIONS`` preflights, since a browser
app calls them from its own origin.

Use it from async code (``await issuer.start()`` / ``await issuer.close()``) or, for
synchronous tests such as Playwright's, on a thread of its own
(``with issuer.serving(): ...``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.processes import free_port

CODE_TTL_S = 60.0
TOKEN_TTL_S = 3600
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "600",
}


@dataclass
class User:
    """Who the issuer signs in (there is no login form)."""

    sub: str = "user|dashboard-test"
    email: str = "dashboard-user@example.com"
    name: str = "Dashboard Test User"
    email_verified: bool = True


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    code_challenge: str
    user: User
    scope: str
    nonce: str | None
    issued_at: float


@dataclass
class OidcIssuer:
    """One client (``client_id`` with its ``redirect_uris``) and one audience."""

    client_id: str = "lectr-dashboard"
    audience: str = "https://api.lectr.test"
    redirect_uris: list[str] = field(default_factory=list)
    user: User = field(default_factory=User)
    port: int = 0
    # What happened, for tests to inspect.
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = f"rsa-{secrets.token_hex(4)}"
        self._codes: dict[str, _Grant] = {}
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        if not self.port:
            self.port = free_port()

    @property
    def url(self) -> str:
        """The issuer identifier, exactly as tokens carry it in ``iss``."""
        return f"http://127.0.0.1:{self.port}"

    # -- running ------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_cors])
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        app.router.add_route("GET", "/userinfo", self._userinfo)
        app.router.add_route("POST", "/userinfo", self._userinfo)
        app.router.add_route("OPTIONS", "/{tail:.*}", _preflight)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @contextlib.contextmanager
    def serving(self) -> Iterator[OidcIssuer]:
        """Serve on a thread of its own (its own event loop) while the block runs."""
        started = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.close())
            loop.close()

        thread = threading.Thread(target=run, name="oidc-issuer", daemon=True)
        thread.start()
        started.wait(10)
        if failure:
            raise failure[0]
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)

    # -- tokens -------------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def access_token(self, user: User | None = None, *, scope: str = "openid email profile") -> str:
        """An access token for ``user`` (default: the configured one), as ``/token``
        issues it."""
        user = user or self.user
        now = int(time.time())
        return self.sign(
            {
                "iss": self.url,
                "aud": self.audience,
                "azp": self.client_id,
                "sub": user.sub,
                "email": user.email,
                "email_verified": user.email_verified,
                "scope": scope,
                "iat": now,
                "exp": now + TOKEN_TTL_S,
            }
        )

    def id_token(self, user: User, nonce: str | None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": self.client_id,
            "azp": self.client_id,
            "sub": user.sub,
            "email": user.email,
            "email_verified": user.email_verified,
            "name": user.name,
            "auth_time": now,
            "iat": now,
            "exp": now + TOKEN_TTL_S,
        }
        if nonce:
            claims["nonce"] = nonce
        return self.sign(claims)

    # -- endpoints ----------------------------------------------------------------------

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": f"{self.url}/jwks",
                "userinfo_endpoint": f"{self.url}/userinfo",
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": ["none"],
                "claims_supported": ["sub", "email", "email_verified", "name", "nonce"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response(self.jwks())

    async def _authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.authorize_requests.append(query)
        client_id, redirect_uri = query.get("client_id"), query.get("redirect_uri")
        # Without a known client and its registered redirect_uri nothing is redirected.
        if client_id != self.client_id:
            return web.Response(status=400, text=f"unknown client_id {client_id!r}")
        if redirect_uri not in self.redirect_uris:
            return web.Response(status=400, text=f"redirect_uri {redirect_uri!r} not registered")
        state = query.get("state")
        problem = None
        if query.get("response_type") != "code":
            problem = ("unsupported_response_type", "response_type must be code")
        elif not query.get("code_challenge"):
            problem = ("invalid_request", "code_challenge is required (PKCE)")
        elif query.get("code_challenge_method") != "S256":
            problem = ("invalid_request", "code_challenge_method must be S256")
        elif not state:
            problem = ("invalid_request", "state is required")
        elif "openid" not in query.get("scope", "").split():
            problem = ("invalid_scope", "scope must include openid")
        if problem is not None:
            params = {"error": problem[0], "error_description": problem[1]}
            if state:
                params["state"] = state
            raise web.HTTPFound(_with_query(redirect_uri, params))
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Grant(
            client_id=client_id,
            redirect_uri=redirect_uri,
            code_challenge=query["code_challenge"],
            user=self.user,
            scope=query.get("scope", ""),
            nonce=query.get("nonce"),
            issued_at=time.monotonic(),
        )
        raise web.HTTPFound(_with_query(redirect_uri, {"code": code, "state": state}))

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        self.token_requests.append(form)
        if form.get("grant_type") != "authorization_code":
            return _token_error("unsupported_grant_type", "only authorization_code")
        code = form.get("code", "")
        # A code is spent by any attempt to use it, right or wrong.
        grant = self._codes.pop(code, None)
        if grant is None:
            return _token_error("invalid_grant", "unknown, expired or already used code")
        if time.monotonic() - grant.issued_at > CODE_TTL_S:
            return _token_error("invalid_grant", "expired code")
        if form.get("client_id") != grant.client_id:
            return _token_error("invalid_grant", "client_id does not match the code's")
        if form.get("redirect_uri") != grant.redirect_uri:
            return _token_error("invalid_grant", "redirect_uri does not match the code's")
        verifier = form.get("code_verifier", "")
        if not verifier or not secrets.compare_digest(s256(verifier), grant.code_challenge):
            return _token_error("invalid_grant", "PKCE verification failed")
        return web.json_response(
            {
                "access_token": self.access_token(grant.user, scope=grant.scope),
                "id_token": self.id_token(grant.user, grant.nonce),
                "token_type": "Bearer",
                "expires_in": TOKEN_TTL_S,
                "scope": grant.scope,
            },
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    async def _userinfo(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        try:
            claims = jwt.decode(
                token,
                self.key.public_key(),
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.url,
            )
        except jwt.PyJWTError:
            return web.json_response(
                {"error": "invalid_token"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return web.json_response(
            {
                "sub": claims["sub"],
                "email": claims.get("email"),
                "email_verified": claims.get("email_verified", False),
                "name": self.user.name if claims["sub"] == self.user.sub else None,
            }
        )


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier``: base64url(SHA256), no padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _with_query(url: str, params: dict[str, str | None]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query.extend((k, v) for k, v in params.items() if v is not None)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _token_error(error: str, description: str) -> web.Response:
    return web.json_response(
        {"error": error, "error_description": description},
        status=400,
        headers={"Cache-Control": "no-store"},
    )


async def _preflight(request: web.Request) -> web.Response:
    return web.Response(status=204)


@web.middleware
async def _cors(request: web.Request, handler: Any) -> web.StreamResponse:
    """CORS on every endpoint the browser app fetches (all but ``/authorize``)."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        if request.path != "/authorize":
            response.headers.update(CORS_HEADERS)
        raise
    if request.path != "/authorize":
        response.headers.update(CORS_HEADERS)
    return response
