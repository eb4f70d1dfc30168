"""The management API's aiohttp application: routes from one table, errors as JSON.

Middlewares, outermost first: errors (every failure becomes ``{"error": {...}}``), the
dashboard's build (``api.static``: GET and HEAD outside ``/api/``, no credentials), then
authentication (``api.auth``, skipped for public routes and for paths no route
matches, so an unknown path is a 404 for anyone). Each handler is wrapped in the check
its route's ``auth`` names, which runs before the handler does anything: the org's
membership (404 for an org the caller does not belong to) or operator rights.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

import asyncpg
from aiohttp import web

from api import access
from api.auth import auth_middleware
from api.errors import ApiError, from_member_error
from api.limiter import FailureLimiter
from api.routes_keys import ROUTES_KEYS
from api.routes_members import ROUTES_MEMBERS
from api.routes_orgs import ROUTES_ORGS
from api.routes_pipeline import ROUTES_PIPELINE
from api.routes_public import ROUTES_ME, ROUTES_PUBLIC
from api.routes_reads import ROUTES_READS
from api.routes_requests import ROUTES_REQUESTS
from api.routes_rules import ROUTES_RULES
from api.routes_session import ROUTES_SESSION
from api.routes_settings import ROUTES_SETTINGS
from api.routes_table import (
    API_SETTINGS,
    CLOCK,
    LIMITER,
    POOL,
    PUBLISHER,
    ROUTES,
    SESSIONS,
    SETTINGS,
    Handler,
    Publisher,
    Route,
    path_uuid,
)
from api.session import Sessions
from api.settings import ApiSettings
from api.static import static_middleware
from lectr import notify
from lectr.db import UNREACHABLE_ERRORS
from lectr.members import MemberError
from lectr.settings import Settings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
ALL_ROUTES: list[Route] = [
    *ROUTES_PUBLIC,
    *ROUTES_SESSION,
    *ROUTES_ME,
    *ROUTES_ORGS,
    *ROUTES_READS,
    *ROUTES_RULES,
    *ROUTES_REQUESTS,
    *ROUTES_KEYS,
    *ROUTES_MEMBERS,
    *ROUTES_SETTINGS,
    *ROUTES_PIPELINE,
]
# Postgres failures that mean "not now" rather than a bug: 503, not 500.
_DATABASE_DOWN = (
    *UNREACHABLE_ERRORS,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.TooManyConnectionsError,
)
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def create_app(
    settings: Settings,
    api_settings: ApiSettings,
    pool: asyncpg.Pool,
    *,
    publisher: Publisher | None = None,
    routes: list[Route] | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    table = ALL_ROUTES if routes is None else routes
    public = {(r.method, r.path) for r in table if r.auth == "public"}

    def is_public(request: web.Request) -> bool:
        if request.match_info.http_exception is not None:
            return True  # no route: the 404/405 needs no credentials
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else ""
        return (request.method, canonical) in public or (
            request.method == "HEAD" and ("GET", canonical) in public
        )

    limiter = FailureLimiter(clock)
    sessions = Sessions(settings, api_settings, clock)
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[
            error_middleware,
            static_middleware(api_settings),
            auth_middleware(
                settings,
                api_settings,
                pool,
                is_public=is_public,
                clock=clock,
                limiter=limiter,
                sessions=sessions,
            ),
        ],
    )
    app[SETTINGS] = settings
    app[API_SETTINGS] = api_settings
    app[POOL] = pool
    app[PUBLISHER] = publisher or broker_publisher(settings)
    app[ROUTES] = table
    app[CLOCK] = clock
    app[LIMITER] = limiter
    app[SESSIONS] = sessions
    for route in table:
        app.router.add_route(route.method, route.path, guarded(route))
    return app


def guarded(route: Route) -> Handler:
    """``route.handler`` behind the check its ``auth`` names."""
    if route.auth in ("public", "signed_in"):
        return route.handler
    if route.auth == "operator":

        async def operator_only(request: web.Request) -> web.StreamResponse:
            access.require_operator(request)
            return await route.handler(request)

        return operator_only

    async def member_only(request: web.Request) -> web.StreamResponse:
        await access.require(request, path_uuid(request, "org"), route.auth)
        return await route.handler(request)

    return member_only


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], object]
) -> web.StreamResponse:
    try:
        return await handler(request)  # type: ignore[misc]
    except ApiError as exc:
        return exc.response()
    except MemberError as exc:
        return from_member_error(exc).response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status)
        if code is None:
            return ApiError("invalid_request", exc.reason).response()
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return ApiError(code, _message(code, request), headers=headers).response()
    except _DATABASE_DOWN as exc:
        log.warning("%s %s: database unavailable: %s", request.method, request.path, exc)
        return ApiError("unavailable", "the database is unavailable; try again").response()
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return ApiError("internal_error", "internal error").response()


def _message(code: str, request: web.Request) -> str:
    if code == "not_found":
        return f"no route {request.path}"
    if code == "method_not_allowed":
        return f"{request.method} is not allowed on {request.path}"
    return f"the body is larger than {MAX_BODY_BYTES} bytes"


def broker_publisher(settings: Settings) -> Publisher:
    """Publishes on ``lectr.control`` like :func:`lectr.notify.notify_proxies`, and says
    whether it could (a broker outage is logged, not raised: the change stands)."""

    async def publish(org_id: uuid.UUID, caches: tuple[str, ...]) -> bool:
        failure = await notify.publish(settings, org_id, caches)
        if failure is not None:
            log.warning("could not notify running proxies: %s; they pick the change up at "
                        "their next full reload", failure)  # fmt: skip
        return failure is None

    return publish
