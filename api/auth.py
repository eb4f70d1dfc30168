"""The auth middleware: who is calling, operator or dashboard user, or nobody (401).

``Authorization: Bearer <token>``. A token equal to ``LECTR_ADMIN_SECRET`` (compared in
constant time) is an operator, unless operator access is off or the secret is the
development default in production. Any other token must be an access token of
``LECTR_OIDC_ISSUER`` (:mod:`api.oidc`); its subject and email find the user's
memberships (:mod:`api.users`). Failed attempts are counted per client address
(``request.remote``; ``X-Forwarded-For`` is not trusted): after 10 in a minute the
address gets 429 until that minute is over. Errors never echo the token.
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp import web

from api.access import CALLER, POOL
from api.caller import Caller
from api.errors import ApiError
from api.oidc import OidcVerifier, TokenError, verified_email
from api.settings import ApiSettings
from api.users import find_caller
from lectr.settings import Settings

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

FAILURES_PER_WINDOW = 10
WINDOW_S = 60.0
MAX_TRACKED_ADDRESSES = 10_000


class FailureLimiter:
    """Failed attempts per client address in fixed windows that start at an address's
    first failure. At most ``max_addresses`` are tracked: when full, windows that are
    over are dropped first, then the oldest, so memory stays bounded under a flood of
    addresses (at the price of forgetting the oldest counts)."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        limit: int = FAILURES_PER_WINDOW,
        window_s: float = WINDOW_S,
        max_addresses: int = MAX_TRACKED_ADDRESSES,
    ) -> None:
        self._clock = clock
        self._limit = limit
        self._window_s = window_s
        self._max_addresses = max_addresses
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def retry_after_s(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None when it may now."""
        window = self._windows.get(address)
        if window is None:
            return None
        started, failures = window
        left_s = started + self._window_s - self._clock()
        if left_s <= 0:
            del self._windows[address]
            return None
        return max(1, math.ceil(left_s)) if failures >= self._limit else None

    def fail(self, address: str) -> None:
        now = self._clock()
        started, failures = self._windows.get(address, (now, 0))
        if now - started >= self._window_s:
            started, failures = now, 0
        self._windows[address] = (started, failures + 1)
        self._windows.move_to_end(address)
        if len(self._windows) > self._max_addresses:
            self._evict(now)

    def _evict(self, now: float) -> None:
        for address in [a for a, (s, _) in self._windows.items() if now - s >= self._window_s]:
            del self._windows[address]
        while len(self._windows) > self._max_addresses:
            self._windows.popitem(last=False)


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
        self,
        settings: Settings,
        api_settings: ApiSettings,
        pool: asyncpg.Pool,
        verifier: OidcVerifier | None,
    ) -> None:
        secret = api_settings.operator_secret(settings)
        self._secret = None if secret is None else secret.encode()
        self._pool = pool
        self._verifier = verifier

    async def caller(self, token: str) -> Caller | None:
        # surrogatepass: any str encodes, and distinct strs stay distinct.
        raw = token.encode("utf-8", "surrogatepass")
        if self._secret is not None and hmac.compare_digest(raw, self._secret):
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
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Middleware that sets ``request[api.access.CALLER]`` on every request ``is_public`` does not
    let through, or raises :class:`ApiError` 401 (no or bad credentials) or 429 (too
    many failures from this address). ``clock`` paces the failure limit and JWKS
    refetches; ``verifier`` replaces the one built from ``api_settings``."""
    if verifier is None and api_settings.oidc_issuer and api_settings.oidc_audience:
        verifier = OidcVerifier(
            api_settings.oidc_issuer,
            api_settings.oidc_audience,
            leeway_s=api_settings.jwt_leeway_s,
            timeout_s=api_settings.oidc_timeout_s,
            clock=clock,
        )
    authenticator = Authenticator(settings, api_settings, pool, verifier)
    limiter = FailureLimiter(clock)

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_public(request):
            return await handler(request)
        address = request.remote or "unknown"
        wait_s = limiter.retry_after_s(address)
        if wait_s is not None:
            raise ApiError(
                "too_many_attempts",
                f"too many failed sign-in attempts; retry in {wait_s} s",
                headers={"Retry-After": str(wait_s)},
            )
        token = bearer_token(request)
        caller = await authenticator.caller(token)
        if caller is None:
            limiter.fail(address)
            raise ApiError(
                "unauthorized",
                "invalid credentials",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        request[CALLER] = caller
        request[POOL] = pool
        return await handler(request)

    return authenticate
