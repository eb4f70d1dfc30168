"""The dashboard's build (``LECTR_DASHBOARD_DIR``), served by ``lectr api`` next to the API.

A middleware, not routes: the router (and so the OpenAPI document) holds only the API,
and nothing here asks for credentials. For GET and HEAD outside ``/api/``:

- ``/assets/...`` is a file of the build's ``assets`` folder, cached for a year (its
  names carry a content hash); a missing one is 404;
- another file of the build's top folder (``favicon.svg``) is served as is;
- any other path is ``index.html`` (the dashboard routes in the browser), never cached.

A path never leaves the folder. HTML answers carry a Content-Security-Policy (the OIDC
issuer's origin is the one other origin allowed, for sign-in), ``nosniff`` and
``Referrer-Policy: no-referrer`` (invite tokens are in the URL's fragment). Without a
build, those paths answer a 503 page saying how to build it; the API works regardless.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from api.settings import ApiSettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ASSETS = "assets"
IMMUTABLE = "public, max-age=31536000, immutable"
_STATIC_METHODS = ("GET", "HEAD")

NOT_BUILT = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Lectr: the dashboard is not built</title></head>
<body>
<h1>The dashboard is not built</h1>
<p>Build it with <code>make dashboard</code>
(or <code>cd dashboard &amp;&amp; npm ci &amp;&amp; npm run build</code>);
no restart is needed once it is there. <code>LECTR_DASHBOARD_DIR</code> says where
the API looks for it.</p>
<p>The management API itself works: see <a href="/api/openapi.json">/api/openapi.json</a>
under <code>/api/</code>.</p>
</body>
</html>
"""


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def missing_build(api_settings: ApiSettings) -> str | None:
    """What to warn about at start when there is no build to serve, else None."""
    folder = api_settings.dashboard_dir
    if (folder / "index.html").is_file():
        return None
    return (
        f"the dashboard is not built ({folder}/index.html is missing): run make dashboard "
        "or set LECTR_DASHBOARD_DIR; the API works without it"
    )


def security_headers(api_settings: ApiSettings) -> dict[str, str]:
    """Headers of every HTML answer."""
    issuer = _origin(api_settings.oidc_issuer) if api_settings.oidc_issuer else None
    extra = f" {issuer}" if issuer else ""
    policy = (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        f"connect-src 'self'{extra}; frame-ancestors 'none'; base-uri 'self'; "
        f"form-action 'self'{extra}"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def _origin(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2].lower()
    return f"{parts.scheme.lower()}://{host}"


def static_middleware(api_settings: ApiSettings) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Serves the build (see the module's docstring); passes everything else on."""
    folder = api_settings.dashboard_dir.resolve()
    html_headers = security_headers(api_settings)

    @web.middleware
    async def serve(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in _STATIC_METHODS or is_api_path(request.path):
            return await handler(request)
        index = folder / "index.html"
        if not index.is_file():
            headers = {**html_headers, "Cache-Control": "no-store"}
            return web.Response(
                text=NOT_BUILT, status=503, content_type="text/html", headers=headers
            )
        found = build_file(folder, request.path)
        if found is None and request.path.startswith(f"/{ASSETS}/"):
            raise web.HTTPNotFound()
        path = found or index
        headers = {"X-Content-Type-Options": "nosniff"}
        if path.suffix == ".html":
            headers.update(html_headers)
        immutable = path.parent.is_relative_to(folder / ASSETS)
        headers["Cache-Control"] = IMMUTABLE if immutable else "no-cache"
        return web.FileResponse(path, headers=headers)

    return serve


def build_file(folder: Path, url_path: str) -> Path | None:
    """The file of ``folder`` (resolved) that ``url_path`` names: one in its top folder
    or under ``assets/``; None for anything else, or outside ``folder``."""
    relative = url_path.lstrip("/")
    if not relative:
        return None
    try:
        path = (folder / relative).resolve()
        inside = path.is_relative_to(folder) and path.is_file()
    except (OSError, ValueError):  # a NUL byte, a name too long
        return None
    if not inside:
        return None
    top = path.parent == folder
    return path if top or path.is_relative_to(folder / ASSETS) else None
