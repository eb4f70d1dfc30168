"""The OpenAPI 3.1 document, made from the route table the router is built from.

Bodies come from the routes' pydantic models (``model_json_schema``, referenced from
``components/schemas``); every route lists the error answers it can give, in the one
error shape. Nothing is written by hand per route, so the document and the router
cannot drift apart (``tests/api/test_openapi.py`` compares them).

``python -m api.openapi`` prints the document of the full route table (the dashboard's
build makes its TypeScript types from it).
"""

from __future__ import annotations

import json
import re
import sys
from functools import cache
from importlib import metadata
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.routes_table import Route
from api.schemas import ErrorBody

REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"\{(\w+)\}")
_ERROR_TEXT = {
    400: "Malformed JSON, or a field at fault (named in error.field)",
    401: "No or bad credentials",
    403: "Not allowed: a role too low, operator sign-in off, or no valid X-CSRF-Token",
    404: "No such route, organisation or object (or not the caller's)",
    409: "Conflicts with the current state (a duplicate name, a used invite, the last owner)",
    413: "The body is larger than 1 MiB",
    429: "Too many failed sign-in attempts from this address; see Retry-After",
    500: "Internal error",
    503: "The database (or, for an invite, the mail server) is unavailable",
}


def document(routes: list[Route], version: str) -> dict[str, Any]:
    return _document(tuple(routes), version)


@cache
def _document(routes: tuple[Route, ...], version: str) -> dict[str, Any]:
    models = _models(routes)
    refs, defs = models_json_schema(
        [(m, "validation" if _is_request(m, routes) else "serialization") for m in models],
        ref_template=REF,
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = _operation(route, {m: refs[(m, mode)] for (m, mode) in refs})
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Lectr management API", "version": version},
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "LECTR_ADMIN_SECRET (operators) or an OIDC access token. Browsers of "
                        "operators may send the lectr_session cookie of POST /api/session "
                        "instead, with X-CSRF-Token on every change"
                    ),
                }
            },
        },
    }


def _models(routes: tuple[Route, ...]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = [ErrorBody]
    for route in routes:
        for model in (route.request_model, route.response_model):
            if model is not None and model not in found:
                found.append(model)
    return found


def _is_request(model: type[BaseModel], routes: tuple[Route, ...]) -> bool:
    return any(r.request_model is model for r in routes)


def _operation(route: Route, refs: dict[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"{route.method.lower()}_{_slug(route.path)}",
        "summary": route.summary,
        "parameters": _parameters(route),
        "responses": _responses(route, refs),
    }
    if route.auth == "public":
        operation["security"] = []
    else:
        operation["security"] = [{"bearer": []}]
        operation["x-lectr-auth"] = route.auth
    if route.request_model is not None:
        model = route.request_model
        operation["requestBody"] = {
            # A body whose every field is optional may be left out.
            "required": any(f.is_required() for f in model.model_fields.values()),
            "content": {"application/json": {"schema": refs[route.request_model]}},
        }
    return operation


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", path.removeprefix("/api/").lower()).strip("_")


def _parameters(route: Route) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "string", "format": "uuid"}}
        for name in _PATH_PARAM.findall(route.path)
    ]  # fmt: skip
    if route.query_model is not None:
        schema = route.query_model.model_json_schema()
        required = set(schema.get("required", ()))
        for name, prop in schema["properties"].items():
            params.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    return params


def _responses(route: Route, refs: dict[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "OK" if route.status != 201 else "Created"}
    if route.status == 204:
        ok["description"] = "Done (no body)"
    elif route.response_model is not None:
        ok["content"] = {"application/json": {"schema": refs[route.response_model]}}
    elif route.path.endswith("openapi.json"):
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    responses: dict[str, Any] = {str(route.status): ok}
    error = {"application/json": {"schema": refs[ErrorBody]}}
    for status in _error_statuses(route):
        responses[str(status)] = {"description": _ERROR_TEXT[status], "content": error}
    return responses


def _error_statuses(route: Route) -> list[int]:
    statuses = [500]
    if route.auth != "public":
        statuses += [401, 429, 503]
    if route.auth not in ("public", "signed_in"):
        statuses.append(403)
    if "{" in route.path:
        statuses.append(404)
    if route.request_model is not None or route.query_model is not None:
        statuses.append(400)
    if route.request_model is not None:
        statuses += [413]
    writes = route.method in ("POST", "PATCH", "PUT")
    if route.request_model is not None and writes and route.auth != "public":
        statuses.append(409)
    return sorted(set(statuses).union(route.errors))


def installed_version() -> str:
    try:
        return metadata.version("lectr")
    except metadata.PackageNotFoundError:
        return "unknown"


def main() -> None:
    # Imported here: api.app imports this module (through the routes).
    from api.app import ALL_ROUTES

    text = json.dumps(document(ALL_ROUTES, installed_version()), indent=2, sort_keys=True)
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
