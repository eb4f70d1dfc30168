"""Errors at the HTTP level, answered in OpenAI's shape like every error Lectr raises.

aiohttp answers malformed requests, unknown paths and its own limits with ``text/plain``
bodies that echo the offending bytes (a header line holding a key, a piece of a body).
Here each such error becomes ``{"error": {"message", "type", "code"}}`` with a fixed
message that never repeats the client's input: :func:`middleware` for what a route
raises (404, 405, 413 …), :func:`for_exception` for what aiohttp's protocol handles
itself before any middleware (see :mod:`proxy.connections`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import http_exceptions, web
from aiohttp.web_protocol import RequestPayloadError

from proxy import access_log
from proxy.errors import LectrError
from proxy.state import STATE

# code -> (OpenAI error type, fixed message); the HTTP status is chosen by the caller.
CODES: dict[str, tuple[str, str]] = {
    "invalid_request": ("invalid_request_error", "the request is not valid HTTP"),
    "not_found": ("invalid_request_error", "no such path: Lectr serves /v1/*"),
    "method_not_allowed": ("invalid_request_error", "this method is not allowed on this path"),
    "request_timeout": (
        "invalid_request_error",
        "the request was not received in time: its headers took too long, or its body stalled",
    ),
    "payload_too_large": ("invalid_request_error", "the request body is too large"),
    "too_many_connections": (
        "api_error",
        "this proxy has too many open connections; retry, preferably on a new connection",
    ),
    "internal_error": ("api_error", "the proxy failed to handle the request"),
}
# Status -> code for errors aiohttp raises on its own (HTTPException).
_BY_STATUS = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    503: "too_many_connections",
}
# Fixed messages for the parser's errors (whose own messages quote the request's bytes).
# The most specific class first.
_PARSER_MESSAGES: tuple[tuple[type[BaseException], str], ...] = (
    (http_exceptions.LineTooLong, "a request line or header is too long"),
    (http_exceptions.BadHttpMethod, "the request method is not valid"),
    (http_exceptions.InvalidURLError, "the request target is not a valid URL"),
    (http_exceptions.BadStatusLine, "the request line is not valid HTTP"),
    (http_exceptions.InvalidHeader, "a request header is not valid"),
    (http_exceptions.ContentEncodingError, "the request body cannot be decoded"),
    (http_exceptions.TransferEncodingError, "the request body's chunked encoding is not valid"),
    (http_exceptions.ContentLengthError, "the request body is shorter than its Content-Length"),
    (RequestPayloadError, "the request body is not valid (framing or encoding)"),
    (http_exceptions.BadHttpMessage, "the request is not valid HTTP"),
)


def body(code: str, message: str | None = None) -> bytes:
    kind, default = CODES[code]
    return orjson.dumps({"error": {"message": message or default, "type": kind, "code": code}})


def response(
    status: int,
    code: str,
    message: str | None = None,
    *,
    retry_after: int | None = None,
    close: bool = False,
) -> web.Response:
    """An error response in OpenAI's shape; ``close`` ends the connection after it."""
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    answer = web.Response(
        body=body(code, message), status=status, content_type="application/json", headers=headers
    )
    if close:
        answer.force_close()
    return answer


def raw_response(status: int, reason: str, code: str) -> bytes:
    """The bytes of a complete ``Connection: close`` error response, for a connection that
    has no request to answer yet (its headers never arrived)."""
    payload = body(code)
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + payload


def for_exception(exc: BaseException | None, status: int) -> web.Response:
    """What to answer when aiohttp's protocol meets ``exc`` (a malformed request, or a
    handler's unexpected exception): never the exception's text, which may quote input."""
    if isinstance(exc, BodyError):
        return exc.response()
    if isinstance(exc, http_exceptions.HttpProcessingError | RequestPayloadError):
        return response(400, "invalid_request", parser_message(exc), close=True)
    if 400 <= status < 500:
        return response(status, code_for(status), close=True)
    return response(max(status, 500), "internal_error", close=True)


def parser_message(exc: BaseException) -> str | None:
    """A fixed message for an error of aiohttp's HTTP parser (None: the default)."""
    return next((text for kind, text in _PARSER_MESSAGES if isinstance(exc, kind)), None)


def code_for(status: int) -> str:
    return _BY_STATUS.get(status) or ("invalid_request" if status < 500 else "internal_error")


class BodyError(LectrError):
    """The request's body cannot be read to its end: it stalled, or its framing broke
    after the headers. Set on the body by :mod:`proxy.connections`, so it is raised where
    the handler reads the body, and answered and recorded like any error Lectr raises."""

    def __init__(self, status: int, code: str, message: str | None = None) -> None:
        Exception.__init__(self, message or CODES[code][1])
        self.code, self.status, self.retry_after = code, status, None

    def response(self) -> web.Response:
        return response(self.status, self.code, str(self), close=True)

    @classmethod
    def timeout(cls) -> BodyError:
        return cls(408, "request_timeout")

    @classmethod
    def malformed(cls, exc: BaseException) -> BodyError:
        return cls(400, "invalid_request", parser_message(exc))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Answered even over the connection cap (a load balancer's health check must not fail
# because the proxy is busy); the connection is closed afterwards all the same.
_ALWAYS_ANSWERED = frozenset({"/health", "/metrics"})


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The proxy's one middleware (one layer costs less than two): aiohttp's own errors
    in OpenAI's shape; over the connection cap, 503 and close; the access log."""
    mode = request.app[STATE].proxy.access_log
    started = time.perf_counter()
    try:
        answer = await _answer(request, handler)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        answer = response(exc.status, code_for(exc.status))
        if "Allow" in exc.headers:  # 405: which methods the path takes
            answer.headers["Allow"] = exc.headers["Allow"]
    except BodyError as exc:
        answer = exc.response()
    except BaseException:
        if mode != "off":
            access_log.after(request, mode, None, time.perf_counter() - started)
        raise
    if mode != "off":
        access_log.after(request, mode, answer.status, time.perf_counter() - started)
    return answer


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not getattr(request.protocol, "over_capacity", False):
        return await handler(request)
    if request.path not in _ALWAYS_ANSWERED:
        return response(503, "too_many_connections", retry_after=1, close=True)
    answer = await handler(request)
    answer.force_close()
    return answer
