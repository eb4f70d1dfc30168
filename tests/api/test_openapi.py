"""The OpenAPI document describes exactly the routes the router serves, with bodies and
errors from the same models."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from aiohttp import web

from api.app import ALL_ROUTES, create_app
from api.settings import ApiSettings
from lectr.settings import Settings
from tests.api.conftest import ApiClient

_HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def _router_routes() -> set[tuple[str, str]]:
    app = create_app(Settings(), ApiSettings(), pool=None)  # type: ignore[arg-type]
    found = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        assert isinstance(route.resource, web.AbstractResource)
        found.add((route.method, route.resource.canonical))
    return found


async def test_every_route_of_the_router_is_in_the_document_and_nothing_else(
    api: ApiClient,
) -> None:
    reply = await api.call("GET", "/api/openapi.json", anonymous=True)
    assert reply.status == 200
    document = reply.body
    assert document["openapi"].startswith("3.1")
    described = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in _HTTP_METHODS
    }
    router = _router_routes()
    assert router, "the router has routes"
    assert described == router


async def test_bodies_refer_to_schemas_that_exist_and_errors_use_the_error_shape(
    api: ApiClient,
) -> None:
    document = (await api.call("GET", "/api/openapi.json", anonymous=True)).body
    text = str(document)
    schemas = document["components"]["schemas"]
    for ref in re.findall(r"#/components/schemas/(\w+)", text):
        assert ref in schemas, ref
    create = document["paths"]["/api/orgs"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OrgCreate"
    }
    assert set(schemas["OrgCreate"]["properties"]) == {"name"}
    assert schemas["OrgCreate"]["additionalProperties"] is False
    for status in ("400", "401", "403", "409", "413"):
        assert create["responses"][status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
    assert set(create["responses"]) >= {"201"}
    summary = document["paths"]["/api/orgs/{org}/summary"]["get"]
    params = {(p["name"], p["in"]) for p in summary["parameters"]}
    assert params == {("org", "path"), ("period", "query")}
    assert summary["x-lectr-auth"] == "viewer"
    assert document["paths"]["/api/health"]["get"]["security"] == []


def test_each_route_is_registered_once() -> None:
    keys = [(r.method, r.path) for r in ALL_ROUTES]
    assert len(keys) == len(set(keys))


def test_python_m_api_openapi_prints_the_whole_document() -> None:
    """What the dashboard's build makes its TypeScript types from."""
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "api.openapi"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    document = json.loads(result.stdout)
    assert result.stdout == json.dumps(document, indent=2, sort_keys=True) + "\n"
    assert result.stderr == ""
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]["/api/session"]) == {"get", "post", "delete"}
    described = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert described == {(r.method, r.path) for r in ALL_ROUTES}
