"""Request bodies and query strings into pydantic models, or an :class:`ApiError`.

Malformed JSON is ``invalid_json``; anything the model rejects (an unknown field, a
wrong type, a value out of range) is ``invalid_request`` naming the first field at
fault as a dotted path (``limits.rpm``, ``items.0``). A body over the app's
``client_max_size`` (1 MiB) makes aiohttp raise 413 while reading, which the error
middleware answers as ``payload_too_large``. A NUL character in any string is
``invalid_request`` naming its field, since Postgres cannot store one in text.
"""

from __future__ import annotations

from typing import TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from api.errors import ApiError

M = TypeVar("M", bound=BaseModel)


async def parse_body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError("invalid_json", f"the body is not valid JSON: {exc}") from None
    return validate(model, data)


def parse_query(request: web.Request, model: type[M]) -> M:
    """The query string as ``model``; a parameter given twice counts once (the first)."""
    data: dict[str, str] = {}
    for name, value in request.query.items():
        data.setdefault(name, value)
    return validate(model, data)


def validate(model: type[M], data: object) -> M:
    try:
        validated = model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        message = first["msg"] if field is None else f"{field}: {first['msg']}"
        raise ApiError("invalid_request", message, field=field) from None
    at = _nul_at(data, ())
    if at is not None:
        field = ".".join(at) or None
        message = f"{field or 'the body'}: contains a NUL character"
        raise ApiError("invalid_request", message, field=field)
    return validated


def _nul_at(data: object, at: tuple[str, ...]) -> tuple[str, ...] | None:
    """Where the first string (a value or an object key) holding a NUL is, else None."""
    if isinstance(data, str):
        return at if "\x00" in data else None
    if isinstance(data, dict):
        for key, value in data.items():
            if "\x00" in key:
                return at
            found = _nul_at(value, (*at, key))
            if found is not None:
                return found
    if isinstance(data, list):
        for index, value in enumerate(data):
            found = _nul_at(value, (*at, str(index)))
            if found is not None:
                return found
    return None
