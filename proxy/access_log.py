"""One log line per request, metadata only, written after its response.

``LECTR_PROXY_ACCESS_LOG``: ``off``; ``errors`` (default) for requests answered with a
status of 400 or more or that ended in error (a client that went away, a stream the
provider broke off); ``all`` for every ``/v1`` request. A line holds the organisation
and key ids, provider, model, status, error category, whether it streamed, and the
latency — never a key, a header value, a path or a body. The model is the client's
text, so it is cut and escaped (a line cannot be forged with a newline).

The request handler links its :class:`~proxy.calls.Call` to the request (:data:`CALL`);
once the handler is done, :func:`after` schedules the line with ``call_soon``, so it is
written after the response, like the request's event, and never delays it.
Requests answered before they have a call (a missing key, a malformed request) are
logged without org.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from proxy.calls import Call

log = logging.getLogger("lectr.access")

CALL = web.RequestKey("call", Call)
# Set once a request's line is decided, so an error aiohttp answers after the
# middleware (a handler's unexpected exception) is not logged twice.
DONE = web.RequestKey("access_logged", bool)
MODEL_MAX = 100


def wanted(mode: str, status: int, error_category: str | None) -> bool:
    if mode == "all":
        return True
    return mode == "errors" and (status >= 400 or error_category is not None)


def write(mode: str, call: Call) -> None:
    """The line for one call (from a ``call_soon`` callback: the response is written);
    :func:`after` has checked that ``mode`` wants it."""
    route = call.route
    log.info(
        "org=%s key=%s provider=%s model=%s status=%d error=%s stream=%d latency_ms=%.1f",
        call.key.org_id,
        call.key.key_id,
        route.provider if route else "-",
        safe(route.model) if route else "-",
        call.status,
        call.error_category or "-",
        call.streaming,
        call.elapsed_s() * 1000.0,
    )


def write_unattributed(
    mode: str, status: int, category: str | None, latency_s: float = 0.0
) -> None:
    """The line for a request answered before it had an org (no key, malformed HTTP …)."""
    if wanted(mode, status, category):
        log.info(
            "org=- key=- provider=- model=- status=%d error=%s stream=0 latency_ms=%.1f",
            status,
            category or "-",
            latency_s * 1000.0,
        )


def safe(text: str | None) -> str:
    """Client text fit for a log line: printable ASCII, cut, never empty."""
    if not text:
        return "-"
    cut = text[:MODEL_MAX]
    if cut.isascii() and cut.isprintable() and " " not in cut:
        return cut
    return cut.encode("unicode_escape").decode("ascii").replace(" ", "\\x20")


def after(request: web.Request, mode: str, status: int | None, latency_s: float) -> None:
    """Schedules the line of a request whose handler is done (``status``: what it
    answered, None when it raised): every ``/v1`` request, and errors on other paths.
    Called by :func:`proxy.http_errors.middleware`, the proxy's one middleware."""
    request[DONE] = True
    call = request.get(CALL)
    loop = asyncio.get_running_loop()
    if call is not None:
        if wanted(mode, call.status, call.error_category):  # both final by now
            loop.call_soon(write, mode, call)
    elif status is not None and (status >= 400 or request.path.startswith("/v1/")):
        loop.call_soon(write_unattributed, mode, status, None, latency_s)
