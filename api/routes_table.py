"""The route table's row type and what every handler shares.

Each ``api/routes_*.py`` module lists its routes as :class:`Route` rows. :mod:`api.app`
registers the router from those rows and wraps each handler in the check its ``auth``
names, so a handler never runs before the caller was allowed in; :mod:`api.openapi`
describes the same rows. One table for both means the document cannot miss a route.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from aiohttp import web
from pydantic import BaseModel

from api.access import caller_of
from api.caller import Caller
from api.errors import not_found
from api.limiter import FailureLimiter
from api.session import Sessions
from api.settings import ApiSettings
from lectr.settings import Settings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Tells running proxies that ``caches`` of an org changed; False when it could not
# (the broker is down): the change stands and the proxies pick it up at their next
# full reload.
Publisher = Callable[[uuid.UUID, tuple[str, ...]], Awaitable[bool]]

SETTINGS = web.AppKey("settings", Settings)
API_SETTINGS = web.AppKey("api_settings", ApiSettings)
POOL = web.AppKey("pool", asyncpg.Pool)
PUBLISHER: web.AppKey[Publisher] = web.AppKey("publisher")
ROUTES: web.AppKey[list[Route]] = web.AppKey("routes")
# Seconds since the epoch: the time the API goes by (tests replace it).
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
# Failed sign-ins per address, shared by bearer tokens, session cookies and sign-in.
LIMITER = web.AppKey("limiter", FailureLimiter)
SESSIONS = web.AppKey("sessions", Sessions)

# What the response says when the proxies could not be told about a change.
RELOAD_PENDING = "reload pending: they pick the change up at their next full reload"


@dataclass(frozen=True)
class Route:
    """One route: ``auth`` is ``public`` (no credentials), ``signed_in`` (any caller),
    ``operator``, or the least role in the path's ``{org}`` (``viewer``, ``member``,
    ``admin``, ``owner``)."""

    method: str
    path: str
    handler: Handler
    summary: str
    auth: str
    request_model: type[BaseModel] | None = None
    response_model: type[BaseModel] | None = None
    query_model: type[BaseModel] | None = None
    status: int = 200
    # Error statuses the route can answer beyond those its shape implies (see
    # ``api.openapi``), e.g. 409 for a DELETE refused to keep the org's last owner.
    errors: tuple[int, ...] = ()


def caller(request: web.Request) -> Caller:
    """The authenticated caller (set by the auth middleware)."""
    return caller_of(request)


def path_uuid(request: web.Request, name: str) -> uuid.UUID:
    """The path's ``{name}`` as a UUID; anything else names nothing, so 404."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise not_found(f"no such {name}") from None


def now(request: web.Request) -> datetime:
    return datetime.fromtimestamp(request.app[CLOCK](), UTC)


def reply(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        body=model.model_dump_json(), status=status, content_type="application/json"
    )
