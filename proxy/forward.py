"""``/v1/*``: authenticate, check limits, route, forward, record.

Everything read here is in memory. The event is handed to the buffer with a
non-blocking put once the response is finished, whatever happened to the request.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import orjson
from aiohttp import web

from lectr.keys import hash_key, looks_like_key
from proxy import relay
from proxy.caches import KeyEntry, OrgEntry
from proxy.calls import Call
from proxy.errors import LectrError
from proxy.routing import route
from proxy.state import STATE, ProxyState
from proxy.upstream import AzureConfigMissing, headers_for, provider_key, url_for

# Paths (after /v1/) whose body must name a model: a malformed body there is a 400.
MODEL_PATHS = frozenset(
    {
        "chat/completions",
        "completions",
        "embeddings",
        "responses",
        "messages",
        "messages/count_tokens",
        "moderations",
        "audio/speech",
        "images/generations",
    }
)
FEATURE_MAX, TASK_MAX = 100, 40
_OPEN_ORG = OrgEntry("active", None, None)
# Keys seen recently and their hash: saves an HMAC per request (the raw key is in this
# process's memory while it serves the request anyway; it is never written anywhere).
_hash = functools.lru_cache(maxsize=10_000)(hash_key)
# Who is at fault for each error Lectr raises (default: lectr).
_SOURCES = {
    "invalid_request": "client",
    "request_too_large": "client",
    "provider_unreachable": "network",
    "provider_timeout": "network",
}


async def handle(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        key, org = authenticate(state, request.headers.get("X-Lectr-Key"))
    except LectrError as exc:  # no org: nothing to record
        state.metrics.request("none", exc.status, None)
        return exc.response()
    call = Call.start(key, request.path, *_tags(request))
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
    feature = request.headers.get("X-Lectr-Feature") or "untagged"
    task = request.headers.get("X-Lectr-Task") or None
    return feature, task


async def _serve(
    request: web.Request, state: ProxyState, call: Call, org: OrgEntry
) -> web.StreamResponse:
    _check_tags(call)
    retry_after = state.rate_limiter.acquire(call.key.org_id, org.rate_limit_rpm)
    if retry_after:
        raise LectrError(
            "rate_limit_exceeded",
            f"this organisation is limited to {org.rate_limit_rpm} requests a minute",
            retry_after=retry_after,
        )
    rest = request.match_info["rest"]
    body = await _read_body(request, state.proxy.max_body_bytes)
    parsed = _parse(body, rest, request.content_type, request.method)
    call.body = parsed
    model = parsed.get("model") if isinstance(parsed, dict) else None
    call.route = route(
        state.caches.rules.get(call.key.org_id, ()),
        header=request.headers.get("X-Lectr-Provider"),
        rest=rest,
        model=model if isinstance(model, str) else None,
        feature=call.feature,
        task=call.task,
        default_provider=state.proxy.default_provider,
    )
    if call.route.model != call.route.requested_model and isinstance(parsed, dict):
        body = orjson.dumps({**parsed, "model": call.route.model})
    call.streaming = isinstance(parsed, dict) and parsed.get("stream") is True
    if not call.streaming:
        return await _forward(request, state, call, rest, body)
    if not state.stream_limiter.acquire(call.key.org_id, org.max_concurrent_streams):
        raise LectrError(
            "concurrent_streams_exceeded",
            f"this organisation may have {org.max_concurrent_streams} streams open at once",
            retry_after=1,
        )
    try:
        return await _forward(request, state, call, rest, body)
    finally:
        state.stream_limiter.release(call.key.org_id)


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
        raise LectrError("request_too_large", f"the request body is larger than {limit} bytes")
    if not request.body_exists:
        return b""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise LectrError(
            "request_too_large", f"the request body is larger than {limit} bytes"
        ) from None


def _parse(body: bytes, rest: str, content_type: str, method: str) -> Any:
    """The JSON body, or None when it is not JSON. A path that needs a model gets a 400
    for a body that is not a JSON object; other paths forward any body as it is."""
    if not body or ("json" not in content_type and content_type != "application/octet-stream"):
        return None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if rest in MODEL_PATHS and method == "POST":
            raise LectrError(
                "invalid_request", f"the request body is not valid JSON: {exc}"
            ) from None
        return None
    if rest in MODEL_PATHS and method == "POST" and not isinstance(parsed, dict):
        raise LectrError("invalid_request", "the request body must be a JSON object")
    return parsed


async def _forward(
    request: web.Request, state: ProxyState, call: Call, rest: str, body: bytes
) -> web.StreamResponse:
    assert call.route is not None and state.session is not None
    provider = call.route.provider
    try:
        url = url_for(
            provider,
            rest,
            request.query_string,
            model=call.route.model,
            base_urls=state.proxy.base_urls,
            config=state.caches.provider_configs.get((call.key.org_id, provider)),
        )
    except AzureConfigMissing as exc:
        raise LectrError("azure_config_missing", str(exc)) from None
    headers = headers_for(provider, request.headers.items(), provider_key(request.headers))
    return await relay.exchange(
        request, state.session, call, url, headers, body, state.proxy.stream_text_cap
    )


def _record(state: ProxyState, call: Call) -> None:
    provider = call.route.provider if call.route else "none"
    state.metrics.request(provider, call.status, call.added_latency_s())
    if state.proxy.record_events:
        state.buffer.put(call.event(state.proxy.instance, state.proxy.default_provider))
