"""The proxy at the HTTP level: malformed requests, aiohttp's own errors, paths outside
/v1, the access log and the start-up log, all through a real proxy on a real socket.

The fuzz plants keys and a prompt in malformed requests and reads every log record of
the process at DEBUG: none may quote them, and every answer is an error in OpenAI's
shape (or the connection closed, where HTTP cannot answer).
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable

import aiohttp
import orjson
import pytest

from lectr.orgs import IssuedKey
from lectr.settings import SettingsError
from proxy import access_log, http_errors, relay
from proxy.log_safety import safe_traceback
from proxy.overrides import log_overrides, shown
from proxy.settings import ProxySettings
from tests.proxy.conftest import RunningProxy, StartProxy, chat, lectr_headers
from tests.proxy.test_process import ProxyProcess, proxy_env, start  # noqa: F401 (fixtures)
from tests.support import raw_http
from tests.support.cli import run_lectr
from tests.support.providers import FakeProviders

LECTR_KEY = "lc_key_PLANTEDxLECTRxKEYx0123456789abcdefghijklmnop"
PROVIDER_KEY = "sk-PLANTED-provider-key-0123456789abcdef"
PROMPT = "PLANTED-PROMPT-tell-me-the-secret-7f3a"
PLANTED = (LECTR_KEY, PROVIDER_KEY, PROMPT)
CHAT_BODY = b'{"model":"gpt-4o","messages":[{"role":"user","content":"' + PROMPT.encode() + b'"}]}'


def _request(*headers: bytes, body: bytes = b"", line: bytes = b"") -> bytes:
    line = line or b"POST /v1/chat/completions HTTP/1.1"
    head = b"".join(h + b"\r\n" for h in (line, b"Host: lectr", *headers))
    return head + b"\r\n" + body


def _malformed(key: str) -> dict[str, list[raw_http.Step]]:
    """Requests aiohttp refuses, each carrying planted keys or the planted prompt.
    ``key`` is a valid Lectr key, for requests that must get as far as reading a body."""
    lk, pk, prompt = LECTR_KEY.encode(), PROVIDER_KEY.encode(), PROMPT.encode()
    valid = f"X-Lectr-Key: {key}".encode()
    length = b"Content-Length: %d" % len(CHAT_BODY)
    return {
        "space before the colon": [
            _request(b"Authorization : Bearer " + pk, length, body=CHAT_BODY)
        ],
        "header line with a leading space": [
            _request(b" X-Lectr-Key: " + lk, b"Authorization: Bearer " + pk, length, body=CHAT_BODY)
        ],
        "obsolete line folding": [
            _request(b"X-Lectr-Key: x", b"  " + lk + b" " + pk, length, body=CHAT_BODY)
        ],
        "transfer-encoding gzip with a body": [
            _request(b"X-Lectr-Key: " + lk, b"Transfer-Encoding: gzip", body=CHAT_BODY)
        ],
        "chunked and content-length": [
            _request(
                b"Transfer-Encoding: chunked", length, body=b"5\r\n" + prompt + b"\r\n0\r\n\r\n"
            )
        ],
        "bad chunk size": [
            _request(
                b"X-Lectr-Key: " + lk,
                b"Transfer-Encoding: chunked",
                body=b"zz" + prompt + b"\r\n" + CHAT_BODY + b"\r\n0\r\n\r\n",
            )
        ],
        "bad chunk mid-body": [
            _request(valid, b"Content-Type: application/json", b"Transfer-Encoding: chunked"),
            b"%x\r\n" % len(CHAT_BODY) + CHAT_BODY + b"\r\n",
            0.05,
            b"q" + prompt + b"\r\n" + pk + b"\r\n0\r\n\r\n",
        ],
        "gzip body that is not gzip": [
            _request(
                valid,
                b"Content-Type: application/json",
                b"Content-Encoding: gzip",
                length,
                body=CHAT_BODY,
            )
        ],
        "header too long": [
            _request(b"X-Lectr-Key: " + lk + b" " + prompt * 300, length, body=CHAT_BODY)
        ],
        "request line too long": [_request(line=b"GET /v1/" + prompt * 300 + b" HTTP/1.1")],
        "too many headers": [
            _request(*(b"X-Planted-%d: %s" % (i, pk) for i in range(200)), length, body=CHAT_BODY)
        ],
        "invalid method": [_request(line=b"G\x00T /v1/" + lk + b" HTTP/1.1")],
        "key as the method": [_request(b"Connection: close", line=pk + b" /v1/models HTTP/1.1")],
        "control character in a header value": [
            _request(b"X-Lectr-Key: " + lk + b"\x01", b"Authorization: Bearer " + pk)
        ],
        "NUL in a header value": [_request(b"X-Lectr-Feature: a\x00" + pk, length, body=CHAT_BODY)],
        "bad header name": [_request(b"X-Lectr(Key: " + lk, length, body=CHAT_BODY)],
        "non-ASCII header name": [_request(b"X-Cl\xe9: " + pk, length, body=CHAT_BODY)],
        "duplicate content-length": [
            _request(b"X-Lectr-Key: " + lk, length, b"Content-Length: 1", body=CHAT_BODY)
        ],
        "negative content-length": [_request(b"Content-Length: -1", body=prompt)],
        "bad HTTP version": [_request(line=b"GET /v1/" + lk + b" HTTP/9.9")],
        "no HTTP version": [b"GET /v1/" + lk + b"\r\n\r\n"],
        "space in the target": [_request(line=b"GET /v1/" + prompt + b" x HTTP/1.1")],
        "TLS hello on the HTTP port": [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + lk],
        "garbage": [prompt + b"\r\n" + pk + b"\r\n\r\n"],
    }


def record_text(record: logging.LogRecord) -> str:
    """Everything a handler could write for ``record``: message, arguments, traceback."""
    parts = [logging.Formatter().format(record), repr(record.args), record.exc_text or ""]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
    return "\n".join(parts)


def assert_openai_errors(raw: bytes, case: str) -> list[raw_http.RawResponse]:
    responses = raw_http.parse(raw)
    for response in responses:
        assert response.status >= 400, case
        assert response.headers["content-type"].startswith("application/json"), case
        body = response.json()
        assert isinstance(body, dict) and set(body) == {"error"}, case
        assert set(body["error"]) == {"message", "type", "code"}, case
        assert all(isinstance(v, str) and v for v in body["error"].values()), case
    return responses


async def test_malformed_requests_are_answered_in_openai_shape_and_never_logged(
    start_proxy: StartProxy, org: IssuedKey, fake: FakeProviders, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger of the process, from the start
    proxy = await start_proxy()
    answered = 0
    for case, steps in _malformed(org.key).items():
        raw = await raw_http.exchange(proxy.url, steps)
        for planted in (*PLANTED, org.key):
            assert planted.encode() not in raw, case
        answered += len(assert_openai_errors(raw, case)) > 0
    assert answered >= 20  # the others were closed without an answer (no HTTP to answer)
    assert fake.received == []  # none of them reached a provider

    response = await chat(proxy, org, "gpt-4o")  # and the proxy serves as before
    assert response.status == 200
    await proxy.events(3)  # the valid-key requests are recorded (let them be published)

    texts = [record_text(record) for record in caplog.records]
    assert any("malformed request" in text for text in texts)  # DEBUG was captured
    for planted in (*PLANTED, org.key):
        leaks = [text for text in texts if planted in text]
        assert not leaks, leaks[0]


async def test_a_proxy_process_at_debug_writes_no_planted_input(
    start: Callable[..., ProxyProcess],  # noqa: F811 (the fixture imported above)
    org: IssuedKey,
) -> None:
    """The same fuzz against `lectr proxy` itself, everything it logs at DEBUG read back
    (with the start-up log of overridden base URLs and an access line per request)."""
    process = start(LECTR_LOG_LEVEL="DEBUG", LECTR_PROXY_ACCESS_LOG="all")
    await process.ready()
    for case, steps in _malformed(org.key).items():
        assert_openai_errors(await raw_http.exchange(process.url, steps), case)
    code, stderr = process.stop()
    assert code == 0, stderr
    for planted in (*PLANTED, org.key):
        assert planted not in stderr
    assert "provider base URLs overridden: anthropic=http://127.0.0.1:" in stderr
    assert stderr.count(" lectr.access ") >= len(_malformed(org.key)) - 2


async def test_a_bug_is_a_500_in_openai_shape_logged_without_request_data(
    proxy: RunningProxy,
    org: IssuedKey,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"bug while handling {PROMPT} for {PROVIDER_KEY}")

    monkeypatch.setattr(relay, "exchange", broken)
    caplog.set_level(logging.DEBUG)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{proxy.url}/v1/chat/completions",
            data=CHAT_BODY,
            headers=lectr_headers(org, **{"Content-Type": "application/json"}),
        ) as response,
    ):
        assert response.status == 500
        body = await response.text()
    assert orjson.loads(body)["error"]["code"] == "internal_error"
    assert PROMPT not in body and PROVIDER_KEY not in body
    texts = [record_text(record) for record in caplog.records]
    [error] = [text for text in texts if "error handling a request: RuntimeError" in text]
    assert "in broken" in error and "builtins.RuntimeError" in error  # where, not what
    assert not any(PROMPT in text or PROVIDER_KEY in text for text in texts)


def test_tracebacks_keep_frames_and_classes_but_no_message() -> None:
    def fails() -> None:
        try:
            raise ValueError(PROVIDER_KEY)
        except ValueError as exc:
            raise RuntimeError(PROMPT) from exc

    try:
        fails()
    except RuntimeError as exc:
        text = safe_traceback(exc)
    assert "in fails" in text and "builtins.ValueError" in text and "builtins.RuntimeError" in text
    assert PROVIDER_KEY not in text and PROMPT not in text


async def test_asyncio_errors_are_logged_without_their_arguments(
    caplog: pytest.LogCaptureFixture, start_proxy: StartProxy, org: IssuedKey
) -> None:
    await start_proxy()  # installs the filters
    caplog.set_level(logging.DEBUG)
    # What asyncio logs for a failing callback: its arguments' repr, and the exception.
    asyncio.get_running_loop().call_exception_handler(
        {"message": f"Exception in callback record({PROMPT!r})", "exception": ValueError(PROMPT)}
    )
    texts = [record_text(r) for r in caplog.records if r.name == "asyncio"]
    assert texts and "Exception in callback record" in texts[0]
    assert not any(PROMPT in text for text in texts)


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/", 404, "not_found"),
        ("GET", "/admin", 404, "not_found"),
        ("POST", "/v2/chat/completions", 404, "not_found"),
        ("GET", "/v1", 404, "not_found"),
        ("POST", "/health", 405, "method_not_allowed"),
        ("DELETE", "/metrics", 405, "method_not_allowed"),
    ],
)
async def test_paths_outside_v1_answer_in_openai_shape(
    proxy: RunningProxy, org: IssuedKey, method: str, path: str, status: int, code: str
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{proxy.url}{path}", headers=lectr_headers(org)) as response,
    ):
        assert response.status == status
        assert response.content_type == "application/json"
        body = await response.json()
    assert body["error"]["code"] == code
    assert set(body["error"]) == {"message", "type", "code"}
    assert body["error"]["message"] == http_errors.CODES[code][1]  # fixed: no echo


async def test_health_and_metrics_are_unchanged(proxy: RunningProxy) -> None:
    status, body = await proxy.get("/health")
    assert status == 200 and "instance" in body
    status, text = await proxy.get("/metrics")
    assert status == 200 and "lectr_proxy_requests_total" in text


async def test_body_over_the_limit_is_a_413_in_openai_shape(
    start_proxy: StartProxy, org: IssuedKey
) -> None:
    proxy = await start_proxy(max_body_bytes=1000)
    steps: list[raw_http.Step] = [
        _request(
            f"X-Lectr-Key: {org.key}".encode(),
            b"Content-Type: application/json",
            b"Transfer-Encoding: chunked",  # no length: found too large while reading
        ),
        b"%x\r\n%s\r\n0\r\n\r\n" % (2000, b"x" * 2000),
    ]
    [response] = assert_openai_errors(await raw_http.exchange(proxy.url, steps), "413")
    assert response.status == 413


def record_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == access_log.log.name]


async def _access_lines(
    start_proxy: StartProxy, org: IssuedKey, caplog: pytest.LogCaptureFixture, mode: str
) -> list[str]:
    caplog.set_level(logging.INFO, logger=access_log.log.name)
    proxy = await start_proxy(access_log=mode)
    ok = await chat(proxy, org, "gpt-4o", **{"X-Lectr-Feature": PROMPT})
    assert ok.status == 200
    async with aiohttp.ClientSession() as session:
        refused = await session.post(
            f"{proxy.url}/v1/chat/completions",
            data=CHAT_BODY,
            headers={"X-Lectr-Key": LECTR_KEY, "Authorization": f"Bearer {PROVIDER_KEY}"},
        )
        assert refused.status == 401
        missing = await session.get(f"{proxy.url}/nowhere")
        assert missing.status == 404
    await proxy.events(1)  # the lines are written just after the responses
    lines = record_lines(caplog)
    for line in lines:
        for planted in (*PLANTED, org.key):
            assert planted not in line
    return lines


async def test_access_log_all(
    start_proxy: StartProxy, org: IssuedKey, caplog: pytest.LogCaptureFixture
) -> None:
    lines = await _access_lines(start_proxy, org, caplog, "all")
    assert len(lines) == 3
    served = next(line for line in lines if "status=200" in line)
    assert f"org={org.org_id}" in served and f"key={org.key_id}" in served
    assert "provider=openai" in served and "model=gpt-4o" in served and "latency_ms=" in served
    assert any("org=- " in line and "status=401" in line for line in lines)
    assert any("status=404" in line for line in lines)


async def test_access_log_errors_only_by_default(
    start_proxy: StartProxy, org: IssuedKey, caplog: pytest.LogCaptureFixture
) -> None:
    lines = await _access_lines(start_proxy, org, caplog, "errors")
    assert [("status=401" in line, "status=404" in line) for line in lines] == [
        (True, False),
        (False, True),
    ]


async def test_access_log_off(
    start_proxy: StartProxy, org: IssuedKey, caplog: pytest.LogCaptureFixture
) -> None:
    assert await _access_lines(start_proxy, org, caplog, "off") == []


def test_access_log_escapes_client_text() -> None:
    assert access_log.safe("gpt-4o") == "gpt-4o"
    assert access_log.safe("a b\nstatus=200\x00é") == "a\\x20b\\nstatus=200\\x00\\xe9"
    assert access_log.safe("x" * 500) == "x" * access_log.MODEL_MAX
    assert access_log.safe(None) == access_log.safe("") == "-"


def test_overridden_base_urls_are_logged_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    log_overrides(
        {
            "openai": "https://user:sk-PLANTED@gateway.example/v1",
            "groq": "http://10.0.0.5:8000/openai/v1?key=" + PROVIDER_KEY,
        }
    )
    [line] = [r.getMessage() for r in caplog.records]
    assert "openai=https://***@gateway.example/v1" in line
    assert "groq=http://10.0.0.5:8000/openai/v1?***" in line
    assert "sk-PLANTED" not in line and PROVIDER_KEY not in line
    assert shown("https://api.example/v1") == "https://api.example/v1"


def test_lectr_version(lectr_env: dict[str, str]) -> None:
    from importlib import metadata

    result = run_lectr("--version", env=lectr_env)
    assert result.returncode == 0
    assert result.stdout.strip() == f"lectr {metadata.version('lectr')}"


def test_http_level_settings_from_environment() -> None:
    defaults = ProxySettings.from_env({})
    assert (defaults.client_timeout_s, defaults.max_connections, defaults.access_log) == (
        30.0,
        10_000,
        "errors",
    )
    settings = ProxySettings.from_env(
        {
            "LECTR_PROXY_CLIENT_TIMEOUT_S": "1.5",
            "LECTR_PROXY_MAX_CONNECTIONS": "7",
            "LECTR_PROXY_ACCESS_LOG": "All",
        }
    )
    assert (settings.client_timeout_s, settings.max_connections, settings.access_log) == (
        1.5,
        7,
        "all",
    )
    for variable, value in (
        ("LECTR_PROXY_CLIENT_TIMEOUT_S", "0"),
        ("LECTR_PROXY_MAX_CONNECTIONS", "-1"),
        ("LECTR_PROXY_ACCESS_LOG", "verbose"),
    ):
        with pytest.raises(SettingsError) as caught:
            ProxySettings.from_env({variable: value})
        assert caught.value.variable == variable
