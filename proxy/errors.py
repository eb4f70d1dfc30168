"""Errors Lectr itself raises, in OpenAI's shape: ``{"error": {"message", "type", "code"}}``.

Provider errors are never wrapped: they pass through unchanged.
"""

from __future__ import annotations

import orjson
from aiohttp import web

# code -> (HTTP status, OpenAI error type)
CODES: dict[str, tuple[int, str]] = {
    "missing_lectr_key": (401, "authentication_error"),
    "invalid_lectr_key": (401, "authentication_error"),
    "org_disabled": (401, "authentication_error"),
    "lectr_key_misplaced": (401, "authentication_error"),
    "invalid_request": (400, "invalid_request_error"),
    "invalid_provider": (400, "invalid_request_error"),
    "azure_config_missing": (400, "invalid_request_error"),
    "payload_too_large": (413, "invalid_request_error"),
    "rate_limit_exceeded": (429, "rate_limit_error"),
    "concurrent_streams_exceeded": (429, "rate_limit_error"),
    "provider_unreachable": (502, "api_error"),
    "provider_timeout": (504, "api_error"),
}


class LectrError(Exception):
    """Raised on the request path; turned into the response below by the handler."""

    def __init__(self, code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = CODES[code][0]
        self.retry_after = retry_after

    def response(self) -> web.Response:
        status, kind = CODES[self.code]
        body = orjson.dumps({"error": {"message": str(self), "type": kind, "code": self.code}})
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after else None
        return web.Response(
            body=body, status=status, content_type="application/json", headers=headers
        )
