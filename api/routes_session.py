"""``/api/session``: operators sign in to the dashboard with the admin secret once and
get an HttpOnly session cookie (:mod:`api.session`) instead of keeping the secret in
the browser.

The three routes are public (they read the cookie themselves). A wrong secret and a
cookie that does not verify count as failed sign-ins in the limiter bearer tokens use.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiohttp import web
from pydantic import BaseModel

from api.body import parse_body
from api.errors import ApiError
from api.limiter import client_address, too_many_attempts
from api.routes_table import LIMITER, SESSIONS, Route, reply
from api.schemas import SessionCreate, SessionInfo, SessionState
from api.session import COOKIE, CSRF_HEADER, Session, unverified_sid

log = logging.getLogger(__name__)

# The answers carry the CSRF token: no cache keeps them.
_NO_STORE = {"Cache-Control": "no-store"}


async def sign_in(request: web.Request) -> web.Response:
    """Checks the admin secret and starts a session."""
    sessions, limiter = request.app[SESSIONS], request.app[LIMITER]
    if not sessions.enabled:
        raise ApiError(
            "forbidden",
            "operator sign-in is off (LECTR_OPERATOR_API=off, or the development admin "
            "secret in production)",
        )
    too_many_attempts(limiter, request)
    body = await parse_body(request, SessionCreate)
    address = client_address(request)
    if not sessions.secret_matches(body.secret):
        limiter.fail(address)
        log.info("refused an operator sign-in from %s: wrong secret", address)
        raise ApiError("unauthorized", "wrong admin secret")
    session = sessions.start()
    log.info("operator signed in from %s", address)
    response = _json(_info(request, session))
    response.headers.add("Set-Cookie", sessions.cookie(request, session))
    return response


async def current(request: web.Request) -> web.Response:
    """The session of the cookie (renewed when half its time is gone); ``null`` without a
    cookie (a signed-out page load is not a failure); 401 for a cookie that does not
    verify."""
    sessions, limiter = request.app[SESSIONS], request.app[LIMITER]
    token = request.cookies.get(COOKIE)
    if not token:
        return _json(SessionState(session=None))
    too_many_attempts(limiter, request)
    session = sessions.authenticate(request, limiter, token)
    renewed = sessions.renewed(session)
    response = _json(SessionState(session=_info(request, renewed or session)))
    if renewed is not None:
        response.headers.add("Set-Cookie", sessions.cookie(request, renewed))
    return response


async def sign_out(request: web.Request) -> web.Response:
    """Clears the cookie. A cookie of a session needs its CSRF token, so another site
    cannot sign the operator out; a cookie that is no session is just cleared."""
    sessions = request.app[SESSIONS]
    token = request.cookies.get(COOKIE)
    sid = unverified_sid(token) if token else None
    # Expired sessions sign out too: the CSRF token is checked, not the signature, so
    # this answer tells nothing about whether the cookie is valid.
    csrf = request.headers.get(CSRF_HEADER)
    if sid is not None and sessions.enabled and not sessions.csrf_matches(sid, csrf):
        raise ApiError("csrf_failed", f"signing out needs the {CSRF_HEADER} header")
    response = web.Response(status=204, headers=_NO_STORE)
    response.headers.add("Set-Cookie", sessions.cleared_cookie(request))
    return response


def _info(request: web.Request, session: Session) -> SessionInfo:
    return SessionInfo(
        operator=True,
        csrf_token=request.app[SESSIONS].csrf_token(session.sid),
        expires_at=datetime.fromtimestamp(session.expires_at, UTC),
    )


def _json(model: BaseModel) -> web.Response:
    response = reply(model)
    response.headers.update(_NO_STORE)
    return response


ROUTES_SESSION = [
    Route("POST", "/api/session", sign_in,
          "Operators: the admin secret for a session cookie and its CSRF token", "public",
          request_model=SessionCreate, response_model=SessionInfo, errors=(401, 403, 429)),
    Route("GET", "/api/session", current,
          "The session of the cookie (null without one; 401 when it does not verify)",
          "public", response_model=SessionState, errors=(401, 429)),
    Route("DELETE", "/api/session", sign_out,
          "Sign out: clears the session cookie (send X-CSRF-Token)", "public", status=204,
          errors=(403,)),
]  # fmt: skip
