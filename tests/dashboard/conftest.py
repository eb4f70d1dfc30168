"""The built dashboard in Debian's chromium, driven by Playwright, against a real stack.

Once per session: a database and broker names of the dashboard suite's own (so seeded
pipeline drops and the demo org never reach other tests), the local OIDC issuer
(:mod:`tests.support.oidc_issuer`) on a background event loop, ``lectr demo --no-live``
for eight days of history, SQL for what the demo does not make (a second org where the
OIDC test user is a viewer), then ``lectr api`` serving ``dashboard/dist``.

Chromium is Debian's (``/usr/bin/chromium``, ``make browser``), never a downloaded one,
started headless with every background connection off and every host name but
127.0.0.1 unresolvable. Each test's page records console errors, uncaught exceptions,
failed requests and answers of 400 or more; the test fails unless there are none but
those it declared with ``problems.allow(path, status)``.

Without ``dashboard/dist/index.html`` (``make dashboard``) or chromium the browser tests
skip, or fail when ``LECTR_TEST_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from playwright.sync_api import expect, sync_playwright

from lectr.broker import BrokerNames
from lectr.db import asyncpg_dsn
from tests.conftest import (
    DELIVERY_LIMIT,
    REPLAY_MAX_AGE,
    broker_topology,
    migrated_database,
    unavailable,
)
from tests.support.cli import LECTR
from tests.support.oidc_issuer import OidcIssuer, User
from tests.support.processes import free_port

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "dashboard" / "dist"
SCREENSHOTS = REPO / "build" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--metrics-recording-only",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
ADMIN_SECRET = "dashboard-tests-admin-secret-0123456789"
PEPPER = "test-pepper-0123456789abcdef"
CLIENT_ID = "lectr-dashboard-tests"
AUDIENCE = "https://api.lectr.test"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
VIEWER_ORG = "browser-viewers"
OIDC_USER = User(sub="user|browser-test", email="viewer@browser.test", name="Vera Viewer")


class BackgroundLoop:
    """An event loop on a thread of its own, for the async servers (OIDC issuer, fake
    providers) and database calls that synchronous Playwright tests need."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclasses.dataclass
class Stack:
    """What the session started: ``url`` serves the dashboard and the API."""

    url: str
    env: dict[str, str]
    database_url: str
    issuer: OidcIssuer
    background: BackgroundLoop
    demo_org: str
    viewer_org: str
    log: Path

    def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async def run() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(asyncpg_dsn(self.database_url))
            try:
                return await conn.fetch(query, *args)
            finally:
                await conn.close()

        return self.background.run(run())

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Call the API as the operator (admin secret as Bearer)."""
        request = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {ADMIN_SECRET}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, json.loads(raw) if raw else None

    def lectr(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*LECTR, *args], env=self.env, capture_output=True, text=True, timeout=timeout_s
        )
        assert result.returncode == 0, f"lectr {' '.join(args)}: {result.stderr}"
        return result


@pytest.fixture(scope="session")
def dashboard_dist() -> Path:
    if not (DIST / "index.html").is_file():
        unavailable(f"the dashboard is not built ({DIST}/index.html missing): run `make dashboard`")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"{CHROMIUM} missing: run `make browser` (Debian's chromium)")
    return DIST


@pytest.fixture(scope="session")
def background() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def dashboard_database_url(postgres_server_url: str, run_id: str) -> Iterator[str]:
    yield from migrated_database(postgres_server_url, f"lectr_dash_{run_id}")


@pytest.fixture(scope="session")
def dashboard_broker(amqp_url: str, broker_names: BrokerNames) -> Iterator[BrokerNames]:
    yield from broker_topology(amqp_url, f"{broker_names.prefix}_dash")


def _wait_for_api(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            pytest.fail(f"lectr api exited {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"lectr api never answered at {url}:\n{log.read_text()[-4000:]}")
        time.sleep(0.1)


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``lectr ARGS`` in the background, its output in ``log`` (a pipe could fill up)."""
    with log.open("wb") as out:
        process = subprocess.Popen([*LECTR, *args], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(25)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@pytest.fixture(scope="session")
def stack(
    dashboard_dist: Path,
    dashboard_database_url: str,
    amqp_url: str,
    dashboard_broker: BrokerNames,
    background: BackgroundLoop,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("dashboard")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LECTR_")}
    env.update(
        LECTR_PROXY_SPOOL_DIR=str(workdir / "lectr-spool"),
        LECTR_DATABASE_URL=dashboard_database_url,
        LECTR_AMQP_URL=amqp_url,
        LECTR_BROKER_PREFIX=dashboard_broker.prefix,
        LECTR_INGEST_DELIVERY_LIMIT=str(DELIVERY_LIMIT),
        LECTR_REPLAY_MAX_AGE=REPLAY_MAX_AGE,
        LECTR_KEY_PEPPER=PEPPER,
        LECTR_ADMIN_SECRET=ADMIN_SECRET,
    )
    demo = subprocess.run(
        [*LECTR, "demo", "--no-live"], env=env, capture_output=True, text=True, timeout=150
    )
    assert demo.returncode == 0, f"lectr demo --no-live failed:\n{demo.stdout}\n{demo.stderr}"

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    issuer = OidcIssuer(
        client_id=CLIENT_ID,
        audience=AUDIENCE,
        redirect_uris=[f"{url}/auth/callback"],
        user=OIDC_USER,
    )
    background.run(issuer.start())
    env.update(
        LECTR_HOST="127.0.0.1",
        LECTR_API_PORT=str(port),
        LECTR_DASHBOARD_URL=url,
        # A copy: a rebuild during the run (npm run build in another shell) would
        # replace the chunks the loaded pages still ask for.
        LECTR_DASHBOARD_DIR=str(shutil.copytree(dashboard_dist, workdir / "dist")),
        LECTR_OIDC_ISSUER=issuer.url,
        LECTR_OIDC_AUDIENCE=AUDIENCE,
        LECTR_OIDC_CLIENT_ID=CLIENT_ID,
    )
    log = workdir / "api.log"
    try:
        with _process(["api"], env, log) as process:
            _wait_for_api(url, process, log, timeout_s=30)
            running = Stack(url, env, dashboard_database_url, issuer, background, "", "", log)
            running.demo_org = _org_id(running, "demo")
            status, body = running.api("POST", "/api/orgs", {"name": VIEWER_ORG})
            assert status == 201, body
            running.viewer_org = body["id"]
            # The OIDC user: a viewer of the demo org (data to see, nothing to change) and
            # of a second, empty org (so the org switcher shows).
            for org_id in (running.demo_org, running.viewer_org):
                running.sql(
                    "INSERT INTO org_members (org_id, email, role) VALUES ($1, $2, 'viewer')",
                    uuid.UUID(org_id),
                    OIDC_USER.email,
                )
            running.lectr("scheduler", "--run-once", "aggregate")
            yield running
    finally:
        background.run(issuer.close())


def _org_id(stack: Stack, name: str) -> str:
    rows = stack.sql("SELECT id FROM organizations WHERE name = $1", name)
    assert rows, f"lectr demo made no organisation {name!r}"
    return str(rows[0]["id"])


# -- the browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Any]:
    args = list(CHROMIUM_ARGS)
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield browser
        browser.close()


class Problems:
    """What went wrong on a page: console errors, uncaught exceptions, failed requests,
    answers of 400 or more (but those allowed)."""

    def __init__(self, page: Any) -> None:
        self.found: list[str] = []
        self.allowed: list[tuple[str, int]] = []
        self.seen_allowed: set[str] = set()
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.found.append(f"uncaught: {error}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def allow(self, path: str, status: int) -> None:
        """An answer ``status`` to a URL containing ``path`` is what the test expects."""
        self.allowed.append((path, status))

    def _is_allowed(self, url: str, status: int | None) -> bool:
        return any(path in url and status in (None, s) for path, s in self.allowed)

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        # Chromium logs every answer >= 400 as "Failed to load resource"; allowed ones are fine.
        if message.text.startswith("Failed to load resource") and self._is_allowed(url, None):
            return
        self.found.append(f"console error: {message.text} ({url})")

    def _failed(self, request: Any) -> None:
        # Leaving a page cancels what it was still loading (a lazy chunk, the favicon, a
        # query): that is not a failure. Anything else (refused, not resolved…) is.
        if request.failure == "net::ERR_ABORTED":
            return
        self.found.append(f"request failed: {request.method} {request.url}: {request.failure}")

    def _response(self, response: Any) -> None:
        if response.status < 400:
            return
        if self._is_allowed(response.url, response.status):
            self.seen_allowed.add(response.url)
            return
        self.found.append(f"answer {response.status}: {response.request.method} {response.url}")


@dataclasses.dataclass
class Browser:
    """A new context (no cookies, no storage) with one page, for one test."""

    context: Any
    page: Any
    problems: Problems
    stack: Stack

    def goto(self, path: str) -> None:
        self.page.goto(f"{self.stack.url}{path}")

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        # From the top: a scrolled page would show its sticky header mid-picture.
        self.page.evaluate("window.scrollTo(0, 0)")
        self.page.screenshot(path=str(path), full_page=True)
        return path


def _operator_state(stack: Stack) -> dict[str, Any]:
    """A signed-in operator's cookie, made through POST /api/session."""
    request = urllib.request.Request(
        f"{stack.url}/api/session",
        method="POST",
        data=json.dumps({"secret": ADMIN_SECRET}).encode(),
        headers={"Content-Type": "application/json", "Origin": stack.url},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        cookie_header = response.headers["Set-Cookie"]
    name, _, rest = cookie_header.partition("=")
    value = rest.split(";", 1)[0]
    cookie = {
        "name": name,
        "value": value,
        "domain": "127.0.0.1",
        "path": "/",
        "httpOnly": True,
        "secure": False,
        "sameSite": "Strict",
        "expires": time.time() + 3600,
    }
    return {"cookies": [cookie], "origins": []}


@pytest.fixture(scope="session")
def operator_state(stack: Stack) -> dict[str, Any]:
    return _operator_state(stack)


class Browsers:
    """Opens browsers (each a new context: no cookies, no storage) for one test, and at
    its end checks that none of their pages had a problem."""

    def __init__(self, browser: Any, stack: Stack, operator_state: dict[str, Any]) -> None:
        self.browser = browser
        self.stack = stack
        self.operator_state = operator_state
        self.opened: list[Browser] = []

    def open(self, *, viewport: dict[str, int] = DESKTOP, **options: Any) -> Browser:
        context = self.browser.new_context(viewport=viewport, locale="en-GB", **options)
        context.set_default_timeout(10_000)
        page = context.new_page()
        opened = Browser(context, page, Problems(page), self.stack)
        self.opened.append(opened)
        return opened

    def anonymous(self, **options: Any) -> Browser:
        """Nobody signed in (an OIDC user signs in from here)."""
        return self.open(**options)

    def operator(self, **options: Any) -> Browser:
        """Signed in with the admin secret (its session cookie)."""
        return self.open(storage_state=self.operator_state, **options)

    def close(self) -> None:
        found = [problem for opened in self.opened for problem in opened.problems.found]
        for opened in self.opened:  # closing aborts what is in flight: not a problem
            opened.context.close()
        assert not found, "the pages had problems:\n" + "\n".join(found)


@pytest.fixture
def browsers(browser: Any, stack: Stack, operator_state: dict[str, Any]) -> Iterator[Browsers]:
    opened = Browsers(browser, stack, operator_state)
    yield opened
    opened.close()


@pytest.fixture
def anonymous(browsers: Browsers) -> Browser:
    return browsers.anonymous()


@pytest.fixture
def operator(browsers: Browsers) -> Browser:
    return browsers.operator()


BANNER = "observability degraded — data may be incomplete"


def settle(browser: Browser, heading: str) -> None:
    """Wait until the page shows ``heading`` as its one h1, its data has arrived (no
    request in flight, nothing "Loading…") and it shows no error (an alert other than
    the degradation banner)."""
    page = browser.page
    expect(page.get_by_role("heading", level=1)).to_have_text([heading])
    page.wait_for_load_state("networkidle")
    expect(page.get_by_text("Loading…")).to_have_count(0)
    expect(page.get_by_role("alert").filter(has_not_text=BANNER)).to_have_count(0)


def sign_in_with_sso(browser: Browser, path: str = "/") -> None:
    """Open ``path`` signed out, then sign in through the local issuer (no form: it
    signs in its test user at once)."""
    page = browser.page
    browser.goto(path)
    expect(page).to_have_url(re.compile(r"/signin"))
    page.get_by_role("button", name="Sign in with SSO").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
