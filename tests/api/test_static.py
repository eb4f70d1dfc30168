"""``lectr api`` serves the dashboard's build next to the API: files, the SPA fallback,
cache and security headers, path traversal, and the page shown without a build."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

import api
from api.settings import ApiSettings
from api.static import missing_build
from tests.api.conftest import ApiClient, StartApi
from tests.support import raw_http

INDEX = b"<!doctype html><html><body><div id=root></div>lectr-index</body></html>"
SCRIPT = b"console.log('lectr')"
ISSUER = "https://tenant.auth0.com/"


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    """A build: index.html, hashed assets, a favicon; a secret next to (not in) it."""
    folder = tmp_path / "dist"
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_bytes(INDEX)
    (folder / "assets" / "index-3f2a9c.js").write_bytes(SCRIPT)
    (folder / "assets" / "index-77aa01.css").write_text("body { margin: 0 }")
    (folder / "favicon.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (folder / "nested").mkdir()
    (folder / "nested" / "page.txt").write_text("not a top-level file")
    (tmp_path / "secret.txt").write_text("outside the build")
    return folder


@pytest.fixture
async def site(start_api: StartApi, dist: Path) -> ApiClient:
    return await start_api(api_settings=ApiSettings(dashboard_dir=dist))


async def get(client: ApiClient, path: str, method: str = "GET") -> tuple[int, bytes, dict]:
    async with client.session.request(method, f"{client.base_url}{path}") as response:
        return response.status, await response.read(), dict(response.headers)


def assert_html_headers(headers: dict[str, str]) -> None:
    policy = headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "base-uri 'self'" in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/index.html",
        "/signin",
        "/invites/accept",
        f"/orgs/{uuid.uuid4()}/anomalies/{uuid.uuid4()}",
        "/nested/page.txt",  # only top-level files and assets are files
        "/favicon.svg/deeper",
    ],
)
async def test_client_routes_answer_index_html_uncached(site: ApiClient, path: str) -> None:
    status, body, headers = await get(site, path)
    assert status == 200
    assert body == INDEX
    assert headers["Content-Type"].startswith("text/html")
    assert headers["Cache-Control"] == "no-cache"
    assert_html_headers(headers)


async def test_assets_are_served_immutable_with_their_type(site: ApiClient) -> None:
    status, body, headers = await get(site, "/assets/index-3f2a9c.js")
    assert status == 200
    assert body == SCRIPT
    assert "javascript" in headers["Content-Type"]
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, _, headers = await get(site, "/assets/index-77aa01.css")
    assert headers["Content-Type"].startswith("text/css")
    status, body, headers = await get(site, "/assets/index-3f2a9c.js", method="HEAD")
    assert status == 200 and body == b""
    assert headers["Content-Length"] == str(len(SCRIPT))


async def test_top_level_files_are_served_uncached(site: ApiClient) -> None:
    status, body, headers = await get(site, "/favicon.svg")
    assert status == 200
    assert headers["Content-Type"] == "image/svg+xml"
    assert headers["Cache-Control"] == "no-cache"
    assert b"<svg" in body


async def test_a_missing_asset_is_404_not_the_index(site: ApiClient) -> None:
    status, body, _ = await get(site, "/assets/index-000000.js")
    assert status == 404
    assert orjson.loads(body)["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "target",
    [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "//etc/passwd",
        "/assets/%00.js",
    ],
)
async def test_nothing_outside_the_build_is_served(site: ApiClient, target: str) -> None:
    request = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    raw = await raw_http.exchange(site.base_url, [request])
    [response] = raw_http.parse(raw)
    assert b"outside the build" not in response.body
    assert b"root:" not in response.body
    assert response.status in (200, 400, 404), response
    if response.status == 200:
        assert response.body == INDEX


async def test_api_paths_stay_json(site: ApiClient) -> None:
    for method, path, status in [
        ("GET", "/api/no-such-thing", 404),
        ("GET", "/api", 404),
        ("DELETE", "/api/health", 405),
        ("POST", "/signin", 404),
    ]:
        reply = await site.call(method, path, anonymous=True)
        assert reply.status == status, (method, path)
        assert reply.headers["Content-Type"] == "application/json"
    assert (await site.call("GET", "/api/health", anonymous=True)).status == 200
    # The static paths need no credentials, API routes still do.
    assert (await site.call("GET", "/api/me", anonymous=True)).status == 401


async def test_the_issuer_origin_is_allowed_for_sign_in(start_api: StartApi, dist: Path) -> None:
    settings = ApiSettings(dashboard_dir=dist, oidc_issuer=ISSUER, oidc_audience="lectr")
    client = await start_api(api_settings=settings)
    _, _, headers = await get(client, "/orgs")
    policy = headers["Content-Security-Policy"]
    assert "connect-src 'self' https://tenant.auth0.com;" in policy
    assert policy.endswith("form-action 'self' https://tenant.auth0.com")
    assert "img-src 'self' data:" in policy
    assert "style-src 'self' 'unsafe-inline'" in policy
    _, _, plain = await get(await start_api(api_settings=ApiSettings(dashboard_dir=dist)), "/")
    assert "auth0" not in plain["Content-Security-Policy"]


async def test_without_a_build_the_page_says_how_to_build_it(
    start_api: StartApi, tmp_path: Path
) -> None:
    empty = tmp_path / "nothing-built"
    client = await start_api(api_settings=ApiSettings(dashboard_dir=empty))
    for path in ("/", "/orgs/abc", "/assets/index.js"):
        status, body, headers = await get(client, path)
        assert status == 503, path
        assert b"make dashboard" in body
        assert b"npm run build" in body
        assert b"/api/" in body
        assert headers["Content-Type"].startswith("text/html")
        assert_html_headers(headers)
    assert (await client.call("GET", "/api/health", anonymous=True)).status == 200
    assert missing_build(ApiSettings(dashboard_dir=empty)) is not None
    assert "make dashboard" in (missing_build(ApiSettings(dashboard_dir=empty)) or "")


async def test_a_build_made_after_start_is_served(start_api: StartApi, tmp_path: Path) -> None:
    folder = tmp_path / "later"
    client = await start_api(api_settings=ApiSettings(dashboard_dir=folder))
    assert (await get(client, "/"))[0] == 503
    folder.mkdir()
    (folder / "index.html").write_bytes(INDEX)
    assert (await get(client, "/"))[1] == INDEX
    assert missing_build(ApiSettings(dashboard_dir=folder)) is None


def test_the_build_folder_setting(tmp_path: Path) -> None:
    source = Path(api.__file__).resolve().parent.parent / "dashboard" / "dist"
    assert ApiSettings().dashboard_dir == source
    assert ApiSettings.from_env({}).dashboard_dir == source
    chosen = ApiSettings.from_env({"LECTR_DASHBOARD_DIR": f" {tmp_path} "})
    assert chosen.dashboard_dir == tmp_path


async def test_static_paths_are_not_in_the_openapi_document(site: ApiClient) -> None:
    document = (await site.call("GET", "/api/openapi.json", anonymous=True)).body
    assert all(path.startswith("/api/") for path in document["paths"])
