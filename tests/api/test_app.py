"""The API process and what every route shares: health, config, errors as JSON, bodies
validated by the models, and ``lectr api`` as a process."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import signal
import socket

import aiohttp
import pytest
from aiohttp import web

from api.routes_table import Route
from api.settings import ApiSettings
from lectr.settings import Settings
from tests.api.conftest import ApiClient, StartApi
from tests.support.cli import run_lectr
from tests.support.processes import free_port, start_lectr, wait_for_health

DOWN_DATABASE = "postgresql://postgres@127.0.0.1:1/lectr"


async def test_health_says_the_database_answers(api: ApiClient) -> None:
    reply = await api.call("GET", "/api/health", anonymous=True)
    assert (reply.status, reply.body) == (200, {"status": "ok", "database": True})


async def test_with_the_database_down_health_says_so_and_requests_get_503(
    start_api: StartApi, lectr_settings: Settings
) -> None:
    api = await start_api(dataclasses.replace(lectr_settings, database_url=DOWN_DATABASE))

    health = await api.call("GET", "/api/health", anonymous=True)
    me = await api.call("GET", "/api/me")

    assert (health.status, health.body) == (200, {"status": "ok", "database": False})
    assert me.status == 503
    assert me.body["error"]["code"] == "unavailable"


async def test_config_without_oidc(api: ApiClient) -> None:
    reply = await api.call("GET", "/api/config", anonymous=True)
    assert reply.status == 200
    assert reply.body["oidc"] is None
    assert reply.body["operator_sign_in"] is True
    assert reply.body["proxy_url"] == f"http://127.0.0.1:{api.settings.proxy_port}"
    assert isinstance(reply.body["version"], str) and reply.body["version"]


async def test_config_with_oidc_and_operator_access_off(start_api: StartApi) -> None:
    api_settings = ApiSettings(
        operator_api=False,
        oidc_issuer="https://tenant.example.auth0.com/",
        oidc_audience="https://lectr.example/api",
        oidc_client_id="dashboard-client",
        proxy_url="https://llm.example.com/",
    )
    api = await start_api(api_settings=api_settings)
    reply = await api.call("GET", "/api/config", anonymous=True)
    assert reply.body["oidc"] == {
        "issuer": "https://tenant.example.auth0.com/",
        "client_id": "dashboard-client",
        "audience": "https://lectr.example/api",
    }
    assert reply.body["operator_sign_in"] is False
    assert reply.body["proxy_url"] == "https://llm.example.com"


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/me"), ("GET", "/api/orgs"),
                                              ("POST", "/api/orgs")])  # fmt: skip
async def test_no_credentials_is_401(api: ApiClient, method: str, path: str) -> None:
    reply = await api.call(method, path, json={"name": "x"}, anonymous=True)
    assert reply.status == 401
    assert reply.body["error"]["code"] == "unauthorized"


async def test_a_wrong_secret_is_401(api: ApiClient) -> None:
    reply = await api.call(
        "GET", "/api/orgs", headers={"Authorization": "Bearer not-the-secret-at-all"}
    )
    assert reply.status == 401


@pytest.mark.parametrize("anonymous", [True, False])
async def test_an_unknown_path_is_a_json_404(api: ApiClient, anonymous: bool) -> None:
    reply = await api.call("GET", "/api/no-such-thing", anonymous=anonymous)
    assert reply.status == 404
    assert reply.body["error"]["code"] == "not_found"
    assert reply.body["error"]["type"] == "not_found_error"


async def test_a_wrong_method_is_a_json_405(api: ApiClient) -> None:
    reply = await api.call("DELETE", "/api/health")
    assert reply.status == 405
    assert reply.body["error"]["code"] == "method_not_allowed"
    assert "GET" in reply.headers["Allow"]


async def test_malformed_json_is_invalid_json(api: ApiClient) -> None:
    reply = await api.call("POST", "/api/orgs", data=b'{"name": ', headers=_JSON)
    assert reply.status == 400
    assert reply.body["error"]["code"] == "invalid_json"


_JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "ok", "colour": "red"}, "colour"),  # unknown field
        ({"name": 5}, "name"),  # wrong type
        ({"name": ""}, "name"),  # too short
        ({"name": "x" * 201}, "name"),  # too long
        ({}, "name"),  # missing
    ],
)
async def test_a_bad_body_names_the_field(api: ApiClient, body: dict, field: str) -> None:
    reply = await api.call("POST", "/api/orgs", json=body)
    assert reply.status == 400, reply.body
    assert reply.body["error"]["code"] == "invalid_request"
    assert reply.body["error"]["field"] == field


async def test_a_body_over_1_mib_is_413(api: ApiClient) -> None:
    big = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    reply = await api.call("POST", "/api/orgs", data=io.BytesIO(big), headers=_JSON)
    assert reply.status == 413
    assert reply.body["error"]["code"] == "payload_too_large"


async def test_an_unexpected_error_is_500_without_details_and_is_logged(
    start_api: StartApi, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret detail of the failure")

    api = await start_api(routes=[Route("GET", "/api/boom", boom, "fails", "public")])
    with caplog.at_level(logging.ERROR, logger="api.app"):
        reply = await api.call("GET", "/api/boom")

    assert reply.status == 500
    assert reply.body == {
        "error": {"type": "api_error", "code": "internal_error", "message": "internal error"}
    }
    assert any(r.exc_info and "secret detail" in str(r.exc_info[1]) for r in caplog.records), (
        "the traceback is logged"
    )


async def test_lectr_api_serves_and_stops_on_sigterm(lectr_env: dict[str, str]) -> None:
    port = free_port()
    process = start_lectr(["api"], {**lectr_env, "LECTR_API_PORT": str(port)})
    try:
        await wait_for_health(f"http://127.0.0.1:{port}/api", process, timeout_s=30)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/api/health") as response,
        ):
            assert await response.json() == {"status": "ok", "database": True}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(process.communicate, timeout=30)
    assert process.returncode == 0, stderr
    assert "api stopped" in stderr


async def test_lectr_api_on_a_port_in_use_says_so_in_one_line(
    lectr_env: dict[str, str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**lectr_env, "LECTR_API_PORT": str(port)}
        result = await asyncio.to_thread(run_lectr, "api", env=env)
    assert result.returncode == 1
    assert result.stderr.endswith(
        f"lectr: cannot serve the API on 127.0.0.1:{port} (LECTR_HOST, LECTR_API_PORT): "
        "address already in use\n"
    ), result.stderr
