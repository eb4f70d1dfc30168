"""``/v1/*``: authenticate, check limits, route, forward, record.

Everything read here is in memory. The event is handed to the buffer with a
non-blocking put once the response is finished, whatever happened to the request.
Client text that reaches the event (feature, task, model, endpoint) is made storable at
the edge (:mod:`proxy.text`); the path is checked before anything is forwarded
(:mod:`proxy.paths`), and a Lectr key is never forwarded as a provider key.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDictProxy

from lectr.keys import KEY_PREFIX, hash_key, looks_like_key
from proxy import access_log, paths, relay
from proxy import body as request_body
from proxy.caches import KeyEntry, OrgEntry
from proxy.calls import Call
from proxy.errors import LectrError
from proxy.routing import InvalidProvider, Route, provider_header, route
from proxy.state import STATE, ProxyState
from proxy.text import from_header, storable
from proxy.upstream import (
    AzureConfigMissing,
    headers_for,
    misplaced_lectr_key,
    provider_key,
    target_key_header,
    url_for,
)

FEATURE_MAX, TASK_MAX = 100, 40
_OPEN_ORG = OrgEntry("active", None, None)
# Keys seen recently and their hash: saves an HMAC per request (the raw key is in this
# process's memory while it serves the request anyway; it is never written anywhere).
_hash = functools.lru_cache(maxsize=10_000)(hash_key)
# Who is at fault for each error Lectr raises (default: lectr).
_SOURCES = {
    "invalid_request": "client",
    "invalid_provider": "client",
    "lectr_key_misplaced": "client",
    "payload_too_large": "client",
    "request_timeout": "client",
    "provider_unreachable": "network",
    "provider_timeout": "network",
}


async def handle(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        _refuse_misplaced_key(request.headers)
        key, org = authenticate(state, request.headers.get("X-Lectr-Key"))
    except LectrError as exc:  # no org: nothing to record
        state.metrics.request("none", exc.status, None)
        return exc.response()
    call = Call.start(key, request.path, *_tags(request))
    request[access_log.CALL] = call  # its line is written after the response
    try:
        return await _serve(request, state, call, org)
    except LectrError as exc:
        call.fail(exc.status, exc.code, _SOURCES.get(exc.code, "lectr"))
        return exc.response()
    except asyncio.CancelledError:  # the client went away, or shutdown's deadline passed
        if call.error_category is None:
            if state.draining:
                call.fail(call.status or 503, "shutdown", "lectr")
            else:
                call.fail(call.status or 499, "client_disconnect", "client")
        raise
    finally:
        # After aiohttp has written the response: recording never delays the client.
        asyncio.get_running_loop().call_soon(_record, state, call)


def _refuse_misplaced_key(headers: CIMultiDictProxy[str]) -> None:
    name = misplaced_lectr_key(headers)
    if name is not None:
        raise LectrError(
            "lectr_key_misplaced",
            f"a Lectr key was sent in {name}: send it in the X-Lectr-Key header, and your"
            " provider key in Authorization; Lectr never forwards a Lectr key",
        )


def authenticate(state: ProxyState, raw_key: str | None) -> tuple[KeyEntry, OrgEntry]:
    if not raw_key:
        raise LectrError("missing_lectr_key", "send your Lectr key in the X-Lectr-Key header")
    entry = (
        state.caches.keys.get(_hash(raw_key, state.settings.key_pepper))
        if looks_like_key(raw_key)
        else None
    )
    if entry is None:
        raise LectrError("invalid_lectr_key", "the X-Lectr-Key is not a valid Lectr key")
    org = state.caches.orgs.get(entry.org_id, _OPEN_ORG)  # not loaded yet: default, no error
    if org.status != "active":
        raise LectrError("org_disabled", "this organisation is disabled")
    return entry, org


def _tags(request: web.Request) -> tuple[str, str | None]:
    feature = request.headers.get("X-Lectr-Feature")
    task = request.headers.get("X-Lectr-Task")
    return from_header(feature) if feature else "untagged", from_header(task) if task else None


async def _serve(
    request: web.Request, state: ProxyState, call: Call, org: OrgEntry
) -> web.StreamResponse:
    _check_tags(call)
    raw_rest = _client_rest(request)
    header = _provider_header(request)
    retry_after = await state.limits.acquire_request(call.key.org_id, org.rate_limit_rpm)
    if retry_after:
        raise LectrError(
            "rate_limit_exceeded",
            f"this organisation is limited to {org.rate_limit_rpm} requests a minute",
            retry_after=retry_after,
        )
    rest = request.match_info["rest"]  # decoded: what the path means, not how it is sent
    body = await _read_body(request, state.proxy.max_body_bytes)
    parsed, exact = request_body.parse(body, rest, request.content_type, request.method)
    call.body = parsed if exact else None  # only what orjson read is kept for counting
    call.route = _route(request, state, call, header, rest, parsed)
    if call.route.model != call.route.requested_model and isinstance(parsed, dict):
        assert call.route.model is not None
        body = request_body.rewrite_model(body, parsed, call.route.model)
    call.streaming = isinstance(parsed, dict) and request_body.is_stream(parsed.get("stream"))
    if not call.streaming:
        return await _forward(request, state, call, raw_rest, body)
    slot = await state.limits.acquire_stream(call.key.org_id, org.max_concurrent_streams)
    if slot is None:
        raise LectrError(
            "concurrent_streams_exceeded",
            f"this organisation may have {org.max_concurrent_streams} streams open at once",
            retry_after=1,
        )
    try:
        return await _forward(request, state, call, raw_rest, body)
    finally:
        state.limits.release_stream(slot)


def _client_rest(request: web.Request) -> str:
    try:
        return paths.client_rest(request.rel_url.raw_path)
    except paths.BadPath as exc:
        raise LectrError("invalid_request", f"invalid path: {exc}") from None


def _provider_header(request: web.Request) -> str | None:
    try:
        return provider_header(request.headers.get("X-Lectr-Provider"))
    except InvalidProvider as exc:
        raise LectrError("invalid_provider", str(exc)) from None


def _route(
    request: web.Request,
    state: ProxyState,
    call: Call,
    header: str | None,
    rest: str,
    parsed: Any,
) -> Route:
    model = parsed.get("model") if isinstance(parsed, dict) else None
    headers = request.headers
    return route(
        state.caches.rules.get(call.key.org_id, ()),
        header=header,
        rest=rest,
        model=storable(model) if isinstance(model, str) else None,
        feature=call.feature,
        task=call.task,
        default_provider=state.proxy.default_provider,
        has_key_for=lambda provider: bool(headers.get(target_key_header(provider))),
    )


def _check_tags(call: Call) -> None:
    too_long = len(call.feature) > FEATURE_MAX
    # The event keeps what fits its columns, so the refused request is still recorded.
    call.feature = call.feature[:FEATURE_MAX]
    if too_long:
        raise LectrError(
            "invalid_request", f"X-Lectr-Feature is longer than {FEATURE_MAX} characters"
        )
    if call.task is not None and len(call.task) > TASK_MAX:
        call.task = call.task[:TASK_MAX]
        raise LectrError("invalid_request", f"X-Lectr-Task is longer than {TASK_MAX} characters")


async def _read_body(request: web.Request, limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise LectrError("payload_too_large", f"the request body is larger than {limit} bytes")
    if not request.body_exists:
        return b""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise LectrError(
            "payload_too_large", f"the request body is larger than {limit} bytes"
        ) from None
    except (web.RequestPayloadError, HttpProcessingError):
        # Framing or content encoding the parser cannot read: say so without its bytes.
        raise LectrError("invalid_request", "the request body could not be read") from None


async def _forward(
    request: web.Request, state: ProxyState, call: Call, raw_rest: str, body: bytes
) -> web.StreamResponse:
    assert call.route is not None and state.session is not None
    provider = call.route.provider
    try:
        url = url_for(
            provider,
            raw_rest,
            request.rel_url.raw_query_string,
            model=call.route.model,
            base_urls=state.proxy.base_urls,
            config=state.caches.provider_configs.get((call.key.org_id, provider)),
        )
    except AzureConfigMissing as exc:
        raise LectrError("azure_config_missing", str(exc)) from None
    except paths.BadPath:
        raise LectrError(
            "invalid_request", "the model name cannot be used as an Azure deployment name"
        ) from None
    key = provider_key(request.headers, provider)
    if key and KEY_PREFIX in key:
        raise LectrError(
            "lectr_key_misplaced",
            f"a Lectr key was sent as the {provider} key: send it in the X-Lectr-Key header",
        )
    headers = headers_for(provider, request.headers.items(), key)
    return await relay.exchange(
        request, state.session, call, url, headers, body, state.proxy.stream_text_cap
    )


def _record(state: ProxyState, call: Call) -> None:
    provider = call.route.provider if call.route else "none"
    state.metrics.request(provider, call.status, call.added_latency_s())
    if state.proxy.record_events:
        state.buffer.put(call.event(state.proxy.instance, state.proxy.default_provider))
