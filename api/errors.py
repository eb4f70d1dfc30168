"""Errors of the management API, in the proxy's shape plus the field at fault:
``{"error": {"type", "code", "message", "field"?}}``.

Handlers raise :class:`ApiError`; the error middleware (``api.app``) turns it, and every
aiohttp HTTP error, into that JSON. Unknown ids and other orgs' ids are 404, never 403,
so ids cannot be probed.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from lectr.members import MemberError

# code -> (HTTP status, error type)
CODES: dict[str, tuple[int, str]] = {
    "invalid_json": (400, "invalid_request_error"),
    "invalid_request": (400, "invalid_request_error"),
    "unauthorized": (401, "authentication_error"),
    "forbidden": (403, "permission_error"),
    "csrf_failed": (403, "permission_error"),
    "not_found": (404, "not_found_error"),
    "method_not_allowed": (405, "invalid_request_error"),
    "conflict": (409, "conflict_error"),
    "payload_too_large": (413, "invalid_request_error"),
    "too_many_attempts": (429, "rate_limit_error"),
    "internal_error": (500, "api_error"),
    "unavailable": (503, "api_error"),
    "email_failed": (503, "api_error"),
}


class ApiError(Exception):
    """An error answer: ``code`` (a key of :data:`CODES`) decides status and type."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status, self.type = CODES[code]
        self.field = field
        self.headers = headers

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "code": self.code, "message": str(self)}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}

    def response(self) -> web.Response:
        return web.Response(
            body=orjson.dumps(self.body()),
            status=self.status,
            content_type="application/json",
            headers=self.headers,
        )


def from_member_error(exc: MemberError) -> ApiError:
    """A broken member or invite rule (:mod:`lectr.members`) as its error answer."""
    code = "invalid_request" if exc.code == "invalid" else exc.code
    return ApiError(code, str(exc), field=exc.field)


def not_found(what: str = "not found") -> ApiError:
    return ApiError("not_found", what)
