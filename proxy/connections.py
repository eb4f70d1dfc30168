"""Client connections: read timeouts, a cap on open connections, errors without echoes.

aiohttp's protocol (one :class:`RequestHandler` per connection) handles a malformed
request itself, before any middleware: it logs the exception, whose text quotes the
offending bytes, and answers a ``text/plain`` body echoing them. It also waits forever
for headers or a body that never come. :class:`ProxyRequestHandler` changes that:

- a malformed request (or a handler's unexpected exception) is answered in OpenAI's
  shape with a fixed message (:mod:`proxy.http_errors`) and logged without its bytes;
- a client has ``LECTR_PROXY_CLIENT_TIMEOUT_S`` to send a request's complete headers
  (from the connection's start, or from the first byte of its next request), and its
  body may not pause longer than that: then it is answered 408 ``request_timeout`` and
  the connection is closed. A connection idle between two requests is closed after
  ``LECTR_PROXY_KEEPALIVE_S`` (aiohttp's keep-alive timeout);
- over ``LECTR_PROXY_MAX_CONNECTIONS`` open connections, a new one is still accepted,
  but its request is answered 503 ``too_many_connections`` with ``Retry-After: 1`` and
  the connection closed (``/health`` and ``/metrics`` are answered, then closed): a load
  balancer retries a 503 on another instance at once, whereas a refused or unanswered
  connection looks like a dead host and is only given up on after a connect timeout.

:class:`ProxyRunner` is :class:`aiohttp.web.AppRunner` with these connections and
aiohttp's own access log off (its format holds header values).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from proxy import access_log, http_errors
from proxy.log_safety import safe_traceback
from proxy.state import STATE

log = logging.getLogger(__name__)

_HEADERS, _BODY = "headers", "body"
_HEADER_TIMEOUT = http_errors.raw_response(408, "Request Timeout", "request_timeout")


class ProxyServer(web.Server):
    """aiohttp's server with :class:`ProxyRequestHandler` connections, counted."""

    def __init__(
        self,
        handler: Any,
        *,
        client_timeout_s: float,
        max_connections: int,
        access_log_mode: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.client_timeout_s = client_timeout_s
        self.max_connections = max_connections
        self.access_log_mode = access_log_mode
        self.open_connections = 0

    def __call__(self) -> RequestHandler:
        return ProxyRequestHandler(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self.open_connections += 1

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self.open_connections -= 1


class ProxyRunner(web.AppRunner):
    """Serves the proxy's app through :class:`ProxyServer` (settings from the app's state)."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        super().__init__(app, **{**kwargs, "access_log": None})

    async def _make_server(self) -> web.Server:
        # aiohttp builds its own Server; this one takes over its handler and options.
        server = await super()._make_server()
        proxy = self.app[STATE].proxy
        return ProxyServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            client_timeout_s=proxy.client_timeout_s,
            max_connections=proxy.max_connections,
            access_log_mode=proxy.access_log,
            **{**server._kwargs, "keepalive_timeout": proxy.keepalive_s},
        )


class ProxyRequestHandler(RequestHandler):
    """One client connection: see the module's docstring."""

    __slots__ = (
        "_access_log_mode",
        "_body",
        "_deadline",
        "_last_read",
        "_phase",
        "_timeout_s",
        "_timer",
        "over_capacity",
    )

    def __init__(self, manager: ProxyServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._timeout_s = manager.client_timeout_s
        self._access_log_mode = manager.access_log_mode
        self.over_capacity = False
        self._phase: str | None = None  # what is being waited for: _HEADERS, _BODY, None
        self._deadline = 0.0  # headers: when they must be complete
        self._last_read = 0.0  # body: when its last bytes came
        self._body: StreamReader | None = None  # the body being received
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        manager = self._manager
        assert isinstance(manager, ProxyServer)
        self.over_capacity = manager.open_connections > manager.max_connections
        self._wait_for(_HEADERS)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._force_close or self._close:
            return
        body = self._body
        receiving_body = body is not None and not body.is_eof()
        parsed = self._request_count
        super().data_received(data)
        if receiving_body:
            assert body is not None
            self._body_received(body, parsed)
        elif self._request_count != parsed:  # a request's headers are complete
            self._headers_received()
        elif data and self._phase is None:  # the first bytes of the next request
            self._wait_for(_HEADERS)

    def _headers_received(self) -> None:
        payload = self._messages[-1][1] if self._messages else None
        if payload is not None:
            _end_if_broken(self, payload)
        self._body = payload if payload is not None and not payload.is_eof() else None
        self._phase = None
        if self._body is not None:
            self._wait_for(_BODY)

    def _body_received(self, body: StreamReader, parsed: int) -> None:
        parsed_more = self._request_count != parsed
        last = self._messages[-1][0] if parsed_more and self._messages else None
        error = getattr(last, "exc", None)  # aiohttp queues an error as a message
        if error is not None and not body.is_eof() and body.exception() is None:
            # The parser gave up mid-body (bad chunked framing …): its error would only be
            # answered after this request, whose body would never end. End it with that.
            body.set_exception(http_errors.BodyError.malformed(error))
        _end_if_broken(self, body)
        if not body.is_eof():
            self._last_read = self._loop.time()
        elif parsed_more:
            self._headers_received()
        else:
            self._body, self._phase = None, None

    def _wait_for(self, phase: str) -> None:
        now = self._loop.time()
        self._phase, self._deadline, self._last_read = phase, now + self._timeout_s, now
        if self._timer is None:  # else the running timer fires earlier and re-arms
            self._timer = self._loop.call_at(self._deadline, self._check)

    def _check(self) -> None:
        self._timer = None
        if self._phase is None or self.transport is None:
            return
        due = self._deadline if self._phase == _HEADERS else self._last_read + self._timeout_s
        if self._loop.time() < due:
            self._timer = self._loop.call_at(due, self._check)
        elif self._phase == _HEADERS:
            self._headers_timed_out()
        else:
            self._body_timed_out()

    def _headers_timed_out(self) -> None:
        if self._request_in_progress or self._messages:  # a pipelined request is served
            self._wait_for(_HEADERS)
            return
        log.debug("a client sent no complete request headers in %.1f s", self._timeout_s)
        self._log_access(408, "request_timeout")
        self._phase = None
        assert self.transport is not None
        self.transport.write(_HEADER_TIMEOUT)
        self.force_close()

    def _body_timed_out(self) -> None:
        body, request = self._body, self._current_request
        self._body, self._phase = None, None
        log.debug("a client's request body stalled for %.1f s", self._timeout_s)
        if body is None or request is None or request.content is not body:
            self.force_close()  # nobody is reading it: no answer to give
            return
        self.close()  # read no more of it; close once the handler has answered
        # Raised where the handler reads the body: it answers 408 and records the request.
        body.set_exception(http_errors.BodyError.timeout())
        body.feed_eof()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's error answer, in OpenAI's shape, logged without the request's bytes."""
        answer = http_errors.for_exception(exc, status)
        if answer.status >= 500:  # a bug: where it happened, never what the request held
            trace = "" if exc is None else "\n" + safe_traceback(exc)
            log.error("error handling a request: %s%s", _kind(exc), trace)
        else:
            log.debug("answered %d to a malformed request (%s)", answer.status, _kind(exc))
        if not request.get(access_log.DONE):  # else the middleware logged it
            self._log_access(answer.status, "http_error")
        if request.writer.output_size > 0:  # a response was begun: the connection is broken
            raise ConnectionError("the response was already started")
        return answer

    def _log_access(self, status: int, category: str) -> None:
        access_log.write_unattributed(self._access_log_mode, status, category)


def _end_if_broken(connection: RequestHandler, body: StreamReader) -> None:
    """A body that failed (bad framing or encoding) has nothing more to read: mark it
    ended, or aiohttp would try to read on after the answer and log the error again;
    the connection closes once the request is answered."""
    if body.exception() is not None and not body.is_eof():
        body.feed_eof()
        connection.close()


def _kind(exc: BaseException | None) -> str:
    return "no exception" if exc is None else type(exc).__name__
