"""Operators' browser sessions: the admin secret, given once to ``POST /api/session``,
becomes an HttpOnly cookie the dashboard sends instead of a bearer token.

The cookie holds a JWT (HS256) signed with a key derived from the admin secret,
HMAC-SHA256(secret, ``lectr session v1``): nothing is stored server-side, and changing
the secret signs every session out. Claims: ``sub`` (``operator``), ``sid`` (random, 128
bits), ``iat``, ``exp`` and ``auth_time``. A session lasts ``LECTR_SESSION_TTL_MIN``
minutes; a request that comes with less than half of that left gets the cookie again
with a later ``exp`` (same ``sid``), never past :data:`ABSOLUTE_MAX_S` after signing in.

CSRF: ``SameSite=Strict`` keeps the cookie off cross-site requests, and every request
but GET, HEAD and OPTIONS signed in by the cookie must also send :data:`CSRF_HEADER`,
HMAC(key, sid), which ``POST``/``GET /api/session`` answer with (a page of another site
cannot read it). Bound to the session, never stored.

Signing out clears the browser's cookie; a copy taken before stays valid until its
``exp``, which the short TTL bounds. Any cookie that does not verify counts as a failed
sign-in (:mod:`api.limiter`): it is a guess at the key, hence at the admin secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import jwt
from aiohttp import web

from api.errors import ApiError
from api.limiter import FailureLimiter, client_address
from api.settings import ApiSettings
from lectr.settings import Settings

log = logging.getLogger(__name__)

COOKIE = "lectr_session"
CSRF_HEADER = "X-CSRF-Token"
# However often it is renewed, a session ends this long after signing in.
ABSOLUTE_MAX_S = 12 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SUBJECT = "operator"
_KEY_CONTEXT = b"lectr session v1"
_ALGORITHM = "HS256"
_CLAIMS = ("sub", "sid", "iat", "exp", "auth_time")


class SessionError(Exception):
    """A cookie that is not a valid session; the reason is logged, never answered."""


@dataclass(frozen=True)
class Session:
    """One signed-in browser: times are whole seconds since the epoch."""

    sid: str
    issued_at: int
    expires_at: int
    auth_time: int


class Sessions:
    """Checks the admin secret (for bearer tokens and ``POST /api/session`` alike), and
    signs, verifies and renews session tokens, and writes their cookie."""

    def __init__(
        self, settings: Settings, api_settings: ApiSettings, clock: Callable[[], float]
    ) -> None:
        secret = api_settings.operator_secret(settings)
        # surrogatepass: any str encodes, and distinct strs stay distinct.
        self._secret = None if secret is None else secret.encode("utf-8", "surrogatepass")
        self._key = (
            None
            if self._secret is None
            else hmac.new(self._secret, _KEY_CONTEXT, hashlib.sha256).digest()
        )
        self._ttl_s = api_settings.session_ttl_min * 60
        self._clock = clock
        self._https_dashboard = settings.dashboard_url.lower().startswith("https://")

    @property
    def enabled(self) -> bool:
        """Whether operators may sign in (the admin secret is usable)."""
        return self._key is not None

    def secret_matches(self, candidate: str) -> bool:
        """Whether ``candidate`` is the admin secret (in constant time); never while
        operator sign-in is off."""
        raw = candidate.encode("utf-8", "surrogatepass")
        return self._secret is not None and hmac.compare_digest(raw, self._secret)

    def start(self) -> Session:
        now = int(self._clock())
        expires_at = min(now + self._ttl_s, now + ABSOLUTE_MAX_S)
        return Session(secrets.token_hex(16), now, expires_at, now)

    def token(self, session: Session) -> str:
        if self._key is None:
            raise SessionError("operator sign-in is off")
        claims = {
            "sub": SUBJECT,
            "sid": session.sid,
            "iat": session.issued_at,
            "exp": session.expires_at,
            "auth_time": session.auth_time,
        }
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM)

    def verify(self, token: str) -> Session:
        """The session ``token`` holds; :class:`SessionError` unless it is signed with
        the current key, unexpired by the app's clock and well formed."""
        if self._key is None:
            raise SessionError("operator sign-in is off")
        try:
            # Expiry is checked below, by the app's clock rather than PyJWT's.
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                options={"verify_exp": False, "verify_iat": False, "require": list(_CLAIMS)},
            )
        except jwt.PyJWTError as exc:
            raise SessionError(str(exc)) from None
        session = _session(claims)
        if self._clock() >= session.expires_at:
            raise SessionError("the session has expired")
        return session

    def renewed(self, session: Session) -> Session | None:
        """``session`` with a later expiry when less than half its TTL is left (and the
        absolute limit allows a later one), else None."""
        now = int(self._clock())
        if session.expires_at - now >= self._ttl_s / 2:
            return None
        expires_at = min(now + self._ttl_s, session.auth_time + ABSOLUTE_MAX_S)
        if expires_at <= session.expires_at:
            return None
        return replace(session, issued_at=now, expires_at=expires_at)

    def csrf_token(self, sid: str) -> str:
        if self._key is None:
            raise SessionError("operator sign-in is off")
        digest = hmac.new(self._key, sid.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def csrf_matches(self, sid: str, header: str | None) -> bool:
        if self._key is None or header is None:
            return False
        return hmac.compare_digest(
            header.encode("utf-8", "surrogatepass"), self.csrf_token(sid).encode()
        )

    def cookie(self, request: web.Request, session: Session) -> str:
        """The ``Set-Cookie`` value that stores ``session`` until it expires."""
        max_age = max(0, session.expires_at - int(self._clock()))
        return self._cookie(request, self.token(session), max_age)

    def cleared_cookie(self, request: web.Request) -> str:
        """The ``Set-Cookie`` value that removes the cookie from the browser."""
        return self._cookie(request, "", 0)

    def _cookie(self, request: web.Request, value: str, max_age: int) -> str:
        cookie = f"{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}"
        if request.secure or self._https_dashboard:
            cookie += "; Secure"
        return cookie

    def authenticate(self, request: web.Request, limiter: FailureLimiter, token: str) -> Session:
        """The session of the cookie ``token``; else the failure counts and 401 (which
        also clears the cookie). The caller checks the limit first."""
        try:
            return self.verify(token)
        except SessionError as exc:
            address = client_address(request)
            limiter.fail(address)
            log.info("refused a session cookie from %s: %s", address, exc)
            raise ApiError(
                "unauthorized",
                "the session is not valid or has expired; sign in again",
                headers={"Set-Cookie": self.cleared_cookie(request)},
            ) from None


def unverified_sid(token: str) -> str | None:
    """The ``sid`` a token claims, unchecked (only to tell which CSRF token it needs)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    sid = claims.get("sid")
    return sid if isinstance(sid, str) else None


def _session(claims: Mapping[str, Any]) -> Session:
    times = [claims["iat"], claims["exp"], claims["auth_time"]]
    if claims["sub"] != SUBJECT or not isinstance(claims["sid"], str):
        raise SessionError("not an operator session")
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in times):
        raise SessionError("times are not whole seconds")
    session = Session(claims["sid"], *times)
    if session.expires_at > session.auth_time + ABSOLUTE_MAX_S:
        raise SessionError("the session outlives the absolute limit")
    return session
