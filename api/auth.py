"""The auth middleware: who is calling, operator or dashboard user, or nobody (401).

``Authorization: Bearer <token>``. A token equal to ``LECTR_ADMIN_SECRET`` (compared in
constant time) is an operator, unless operator access is off or the secret is the
development default in production. Any other token must be an access token of
``LECTR_OIDC_ISSUER`` (:mod:`api.oidc`); its subject and email find the user's
memberships (:mod:`api.users`). Without ``Authorization``, an operator's session cookie
(:mod:`api.session`) signs in too; a change made with it also needs its CSRF token
(403 ``csrf_failed`` without). Failed attempts are counted per client address
(:mod:`api.limiter`): after 10 in a minute the address gets 429 until that minute is
over. Errors never echo the token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp import web

from api.access import CALLER, POOL
from api.caller import Caller
from api.errors import ApiError
from api.limiter import FailureLimiter, client_address, too_many_attempts
from api.oidc import OidcVerifier, TokenError, verified_email
from api.session import COOKIE, CSRF_HEADER, SAFE_METHODS, Sessions
from api.settings import ApiSettings
from api.users import find_caller
from lectr.settings import Settings

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_token(request: web.Request) -> str:
    """The token of ``Authorization: Bearer <token>``; 401 when missing or malformed."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise ApiError(
            "unauthorized",
            "send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token


class Authenticator:
    """Turns a bearer token into a :class:`Caller`, or None when it is not valid."""

    def __init__(
        self, sessions: Sessions, pool: asyncpg.Pool, verifier: OidcVerifier | None
    ) -> None:
        self._sessions = sessions
        self._pool = pool
        self._verifier = verifier

    async def caller(self, token: str) -> Caller | None:
        if self._sessions.secret_matches(token):
            return Caller(operator=True)
        if self._verifier is None:
            log.info("refused a token: no OIDC issuer is configured")
            return None
        try:
            claims = await self._verifier.verify(token)
        except TokenError as exc:
            log.info("refused a token: %s", exc)
            return None
        subject = str(claims["sub"])
        verifier = self._verifier

        async def lookup_email() -> str | None:
            return await verifier.userinfo_email(token, subject)

        return await find_caller(self._pool, subject, verified_email(claims), lookup_email)


def auth_middleware(
    settings: Settings,
    api_settings: ApiSettings,
    pool: asyncpg.Pool,
    *,
    is_public: Callable[[web.Request], bool],
    clock: Callable[[], float] = time.time,
    verifier: OidcVerifier | None = None,
    limiter: FailureLimiter | None = None,
    sessions: Sessions | None = None,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Middleware that sets ``request[api.access.CALLER]`` on every request ``is_public`` does not
    let through, or raises :class:`ApiError` 401 (no or bad credentials), 403 (a change
    by session cookie without its CSRF token) or 429 (too many failures from this
    address). ``clock`` paces the failure limit, JWKS refetches and sessions;
    ``verifier`` replaces the one built from ``api_settings``; ``limiter`` and
    ``sessions`` are shared with ``/api/session`` (new ones when not given)."""
    if verifier is None and api_settings.oidc_issuer and api_settings.oidc_audience:
        verifier = OidcVerifier(
            api_settings.oidc_issuer,
            api_settings.oidc_audience,
            leeway_s=api_settings.jwt_leeway_s,
            timeout_s=api_settings.oidc_timeout_s,
            clock=clock,
        )
    limiter = limiter or FailureLimiter(clock)
    sessions = sessions or Sessions(settings, api_settings, clock)
    authenticator = Authenticator(sessions, pool, verifier)

    async def by_session(request: web.Request, handler: Handler, cookie: str) -> web.StreamResponse:
        session = sessions.authenticate(request, limiter, cookie)
        if request.method not in SAFE_METHODS and not sessions.csrf_matches(
            session.sid, request.headers.get(CSRF_HEADER)
        ):
            raise ApiError(
                "csrf_failed",
                f"a change signed in by the session cookie needs its {CSRF_HEADER} header",
            )
        request[CALLER] = Caller(operator=True, session=True)
        request[POOL] = pool
        response = await handler(request)
        renewed = sessions.renewed(session)
        if renewed is not None and not response.prepared:
            response.headers.add("Set-Cookie", sessions.cookie(request, renewed))
        return response

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_public(request):
            return await handler(request)
        too_many_attempts(limiter, request)
        cookie = request.cookies.get(COOKIE)
        if "Authorization" not in request.headers and cookie:
            return await by_session(request, handler, cookie)
        token = bearer_token(request)
        caller = await authenticator.caller(token)
        if caller is None:
            limiter.fail(client_address(request))
            raise ApiError(
                "unauthorized",
                "invalid credentials",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        request[CALLER] = caller
        request[POOL] = pool
        return await handler(request)

    return authenticate
