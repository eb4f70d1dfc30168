"""Sending the request upstream and relaying the response, bytes as they arrive.

A non-streamed JSON response is read whole (it is small) to take its token usage and,
from the same parse, the name of the model that answered; a stream
(``text/event-stream``) or a large body is written to the client chunk by chunk as it
arrives, never re-encoded. A client that goes away cancels the upstream request;
an upstream that breaks mid-stream ends the client's stream with an error (the
connection is aborted, so the client cannot mistake it for a complete response).
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from proxy.calls import Call
from proxy.errors import LectrError
from proxy.usage import BodyReader, StreamScanner

# Response headers not copied to the client (aiohttp sets its own framing).
_DROPPED = (
    "Connection",
    "Keep-Alive",
    "Transfer-Encoding",
    "Content-Length",
    "Content-Encoding",
    "Proxy-Authenticate",
    "Trailer",
    "Upgrade",
)
# A non-streamed body up to this size is read whole (and its usage read).
WHOLE_BODY_MAX = 4 * 1024 * 1024
# A client that leaves mid-stream: how long the provider may take to end the stream
# (then it was complete: the client had every byte) before it counts as a disconnect.
END_GRACE_S = 1.0


async def exchange(
    request: web.Request,
    session: aiohttp.ClientSession,
    call: Call,
    url: URL,
    headers: dict[str, str],
    body: bytes,
    text_cap: int,
) -> web.StreamResponse:
    sent = time.perf_counter()
    try:
        upstream = await session.request(
            request.method, url, data=body or None, headers=headers, allow_redirects=False
        )
    except (aiohttp.ConnectionTimeoutError, TimeoutError, aiohttp.ServerTimeoutError):
        raise LectrError("provider_timeout", "the provider did not answer in time") from None
    except aiohttp.ClientError as exc:
        raise LectrError(
            "provider_unreachable", f"cannot reach the provider: {type(exc).__name__}"
        ) from None
    finally:
        call.upstream_s = time.perf_counter() - sent
    try:
        response = await _relay(request, upstream, call, sent, text_cap)
    except BaseException:
        upstream.close()  # cancels the upstream request (the client went away, say)
        raise
    upstream.release()
    return response


async def _relay(
    request: web.Request, upstream: aiohttp.ClientResponse, call: Call, sent: float, cap: int
) -> web.StreamResponse:
    call.status = upstream.status
    if upstream.status >= 400:
        call.error_category, call.error_source = _category(upstream.status), "provider"
    headers = _response_headers(upstream)
    if upstream.content_type == "text/event-stream":
        return await _stream(request, upstream, call, headers, sent, cap)
    length = upstream.content_length
    if length is None or length > WHOLE_BODY_MAX:
        return await _stream(request, upstream, call, headers, sent, None)
    return await _whole(upstream, call, headers, sent)


async def _whole(
    upstream: aiohttp.ClientResponse, call: Call, headers: CIMultiDict[str], sent: float
) -> web.Response:
    call.ttfb_s = time.perf_counter() - call.started
    try:
        body = await upstream.read()
    except (TimeoutError, aiohttp.ServerTimeoutError):
        call.upstream_s = time.perf_counter() - sent
        raise LectrError("provider_timeout", "the provider stopped mid-response") from None
    except aiohttp.ClientError:
        call.upstream_s = time.perf_counter() - sent
        raise LectrError(
            "provider_unreachable", "the provider closed the connection mid-response"
        ) from None
    call.upstream_s = time.perf_counter() - sent
    if upstream.status < 300 and "json" in upstream.content_type:
        call.usage, call.completion, call.response_model = BodyReader.read(body)
    return web.Response(body=body, status=upstream.status, headers=headers)


async def _stream(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    call: Call,
    headers: CIMultiDict[str],
    sent: float,
    text_cap: int | None,
) -> web.StreamResponse:
    """Relay chunk by chunk; scan server-sent events for usage (and the answering model)
    when ``text_cap`` is set.

    The usage, model and text of what was relayed are set on ``call`` however the relay
    ends (a client that goes away included), so its tokens are always counted."""
    scanner = StreamScanner(text_cap) if text_cap is not None and upstream.status < 300 else None
    response = web.StreamResponse(status=upstream.status, headers=headers)
    await response.prepare(request)
    try:
        complete = await _pump(request, upstream, response, call, scanner, sent)
    finally:
        if scanner is not None:
            scanner.finish()
            call.usage, call.completion = scanner.usage, scanner.text
            call.response_model = scanner.model
            call.truncated = scanner.truncated
    if complete:
        await _end(request, response)
    return response


async def _pump(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    response: web.StreamResponse,
    call: Call,
    scanner: StreamScanner | None,
    sent: float,
) -> bool:
    """Relay until the provider ends the stream (True) or either side breaks it (False)."""
    chunks = upstream.content.iter_any()
    while True:
        try:
            chunk = await chunks.__anext__()
        except StopAsyncIteration:
            return True
        except (aiohttp.ClientError, TimeoutError) as exc:
            _upstream_broke(request, call, exc)
            return False
        except asyncio.CancelledError:
            # Every chunk so far was written; SDKs close the connection as soon as they
            # have the last event, often before the provider's end of stream is read.
            if not await _ends_now(request, upstream):
                raise
            return True
        finally:
            call.upstream_s = time.perf_counter() - sent
        if call.ttfb_s is None:
            call.ttfb_s = time.perf_counter() - call.started
        try:
            await response.write(chunk)
        except ConnectionResetError:
            call.error_category, call.error_source = "client_disconnect", "client"
            return False
        if scanner is not None:
            scanner.feed(chunk)


async def _ends_now(request: web.Request, upstream: aiohttp.ClientResponse) -> bool:
    """After a cancellation: whether the client went away (rather than shutdown's deadline
    passing) and the provider then ends the stream, within a moment, without sending more.
    True means the stream was relayed complete, and the cancellation is withdrawn."""
    task = asyncio.current_task()
    if request.transport is not None or task is None:
        return False
    try:
        async with asyncio.timeout(END_GRACE_S):
            rest = await upstream.content.readany()
    except (aiohttp.ClientError, TimeoutError):
        return False
    if rest:
        return False
    task.uncancel()
    return True


async def _end(request: web.Request, response: web.StreamResponse) -> None:
    """Ends a complete stream. A client gone by now had every byte: the stream stays
    complete (only the chunked encoding's last, empty chunk is lost)."""
    try:
        await response.write_eof()
    except ConnectionResetError:
        pass
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if request.transport is not None or task is None:
            raise
        task.uncancel()


def _upstream_broke(request: web.Request, call: Call, exc: BaseException) -> None:
    timed_out = isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError)
    call.error_category = "upstream_timeout" if timed_out else "upstream_disconnect"
    call.error_source = "network" if timed_out else "provider"
    if request.transport is not None:  # abort: the client must see an incomplete response
        request.transport.abort()


def _response_headers(upstream: aiohttp.ClientResponse) -> CIMultiDict[str]:
    headers = CIMultiDict(upstream.headers)
    for name in _DROPPED:  # case-insensitive
        if name in headers:
            del headers[name]
    return headers


def _category(status: int) -> str:
    if status == 429:
        return "rate_limited"
    if status in (401, 403):
        return "auth_error"
    if status >= 500:
        return "server_error"
    return "bad_request"
