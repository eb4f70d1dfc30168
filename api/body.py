"""Request bodies and query strings into pydantic models, or an :class:`ApiError`.

Malformed JSON is ``invalid_json``; anything the model rejects (an unknown field, a
wrong type, a value out of range) is ``invalid_request`` naming the first field at
fault as a dotted path (``limits.rpm``, ``items.0``). A body over the app's
``client_max_size`` (1 MiB) makes aiohttp raise 413 while reading, which the error
middleware answers as ``payload_too_large``. A string Postgres cannot store (a NUL, a
lone surrogate: :mod:`schema.text`) is ``invalid_request`` naming its field.
"""

from __future__ import annotations

from typing import TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from api.errors import ApiError
from schema.text import text_problem

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
    found = _unstorable(data, ())
    if found is not None:
        at, problem = found
        field = ".".join(at) or None
        raise ApiError("invalid_request", f"{field or 'the body'}: {problem}", field=field)
    return validated


def _unstorable(data: object, at: tuple[str, ...]) -> tuple[tuple[str, ...], str] | None:
    """Where the first string (a value or an object key) Postgres would refuse is, and
    why (:func:`schema.text.text_problem`), else None."""
    if isinstance(data, str):
        problem = text_problem(data)
        return None if problem is None else (at, problem)
    if isinstance(data, dict):
        for key, value in data.items():
            found = _unstorable(key, at) or _unstorable(value, (*at, key))
            if found is not None:
                return found
    if isinstance(data, list):
        for index, value in enumerate(data):
            found = _unstorable(value, (*at, str(index)))
            if found is not None:
                return found
    return None
