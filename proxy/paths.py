"""The upstream URL's path and query, from the client's as it sent them.

The forwarded path is the provider's base path plus the client's path segments after
``/v1/``, still percent-encoded as received, and each segment is checked first: once
decoded it may not be ``.`` or ``..`` (nor ``..;x``, which some servers read as ``..``),
nor hold ``/``, ``\\``, ``?``, ``#`` or NUL. Otherwise a server on the way could resolve
it out of the provider's base (``/v1/..%2f..%2fadmin``) or into a query
(``/v1/chat%3Fx=1``). A path that fails is refused before anything is sent.

The query is passed on byte for byte (``%23`` stays ``%23``): the URL is built already
encoded, so neither yarl nor aiohttp re-quotes or normalises it.
"""

from __future__ import annotations

import functools
from urllib.parse import quote, unquote

from yarl import URL

PREFIX = "/v1/"
_DOT_SEGMENTS = (".", "..")
_FORBIDDEN = ("/", "\\", "?", "#", "\x00")


class BadPath(ValueError):
    """A path (or a name used as one of its segments) that could leave its base."""


def client_rest(raw_path: str) -> str:
    """The raw path after ``/v1/``, every segment checked. ``raw_path`` is the request's
    path as sent (``request.rel_url.raw_path``): percent-encoded, without the query."""
    if not raw_path.startswith(PREFIX):  # /%761/… decodes to /v1/… but is not sent so
        raise BadPath("the path must start with /v1/")
    rest = raw_path[len(PREFIX) :]
    # Only a path with an escape, a dot after a slash or a backslash needs a closer look.
    if "%" in rest or "/." in raw_path or "\\" in rest:
        for segment in rest.split("/"):
            check_segment(unquote(segment))
    return rest


def check_segment(name: str) -> None:
    """Raise :class:`BadPath` unless ``name`` (decoded) is safe as one path segment."""
    if name.partition(";")[0] in _DOT_SEGMENTS:
        raise BadPath("a path segment may not be . or ..")
    for char in _FORBIDDEN:
        if char in name:
            raise BadPath("a path segment may not hold an encoded /, \\, ?, # or NUL")


def segment(name: str) -> str:
    """``name`` (a model or Azure deployment) checked and encoded as one path segment."""
    check_segment(name)
    return quote(name, safe="")


def with_param(query: str, name: str, value: str) -> str:
    """``query`` with every ``name`` parameter replaced by one ``name=value`` at the end;
    the other parameters are kept byte for byte."""
    kept = [part for part in query.split("&") if part and unquote(part.partition("=")[0]) != name]
    return "&".join([*kept, f"{name}={quote(value, safe='')}"])


@functools.lru_cache(maxsize=256)
def base(url: str) -> str:
    """A base URL (from settings or an organisation's config) encoded, without a
    trailing slash."""
    return str(URL(url)).rstrip("/")


def join(base_url: str, rest: str, query: str) -> URL:
    """``<base>/<rest>?<query>`` as given: ``rest`` and ``query`` are already encoded."""
    raw = f"{base(base_url)}/{rest}?{query}" if query else f"{base(base_url)}/{rest}"
    return URL(raw, encoded=True)
