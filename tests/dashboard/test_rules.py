"""A rule made in the dashboard (form, Preview, Save rule) is stored and reaches a
running ``lectr proxy`` within a second: the API tells proxies on the control exchange,
and the next request is routed by it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import Browser, Stack, _process
from tests.support.processes import free_port
from tests.support.providers import FakeProviders

pytestmark = pytest.mark.timeout(240)

# A feature of the demo's history, so the preview has requests to show.
FEATURE = "ticket-classifier"
DEADLINE_S = 1.0


@dataclass
class Proxy:
    url: str
    key: str
    fake: FakeProviders

    def routed_model(self) -> str:
        """Send one chat completion for gpt-4o with the test's feature; the model the
        provider was asked for."""
        request = urllib.request.Request(
            f"{self.url}/v1/chat/completions",
            method="POST",
            data=json.dumps(
                {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
            ).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": "Bearer sk-test-provider-key-0123456789",
                "X-Lectr-Key": self.key,
                "X-Lectr-Feature": FEATURE,
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            response.read()
        return self.fake.last.json()["model"]


@pytest.fixture
def proxy(stack: Stack, tmp_path) -> Iterator[Proxy]:
    fake = FakeProviders()
    runner = stack.background.run(fake.start())
    status, body = stack.api("POST", f"/api/orgs/{stack.demo_org}/keys", {"name": "browser"})
    assert status == 201, body
    port = free_port()
    env = {
        **stack.env,
        "LECTR_PROXY_PORT": str(port),
        "LECTR_INSTANCE_NAME": "browser-test-proxy",
        "LECTR_PROXY_SPOOL_DIR": str(tmp_path / "spool"),
        **fake.env(),
    }
    url = f"http://127.0.0.1:{port}"
    try:
        with _process(["proxy"], env, tmp_path / "proxy.log") as process:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, (tmp_path / "proxy.log").read_text()
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=1) as r:
                        if r.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                assert time.monotonic() < deadline, "the proxy never became ready"
                time.sleep(0.1)
            yield Proxy(url, body["key"], fake)
    finally:
        stack.background.run(runner.cleanup())


def set_field(page, label: str, value: str) -> None:
    """Fill a text input or choose in a select, whichever the form uses."""
    field = page.get_by_label(label, exact=True)
    if field.evaluate("e => e.tagName") == "SELECT":
        field.select_option(value)
    else:
        field.fill(value)


def test_a_rule_made_in_the_dashboard_is_stored_and_routes_the_proxy(
    operator: Browser, stack: Stack, proxy: Proxy
) -> None:
    assert proxy.routed_model() == "gpt-4o"
    name = f"browser mini {uuid.uuid4().hex[:6]}"
    page = operator.page
    operator.goto(f"/orgs/{stack.demo_org}/rules")
    expect(page.get_by_role("heading", level=1, name="Rules", exact=True)).to_be_visible()
    page.get_by_role("button", name="New rule").click()

    set_field(page, "Name", name)
    set_field(page, "Match feature", FEATURE)
    set_field(page, "Match provider", "openai")
    set_field(page, "Match model", "gpt-4o")
    set_field(page, "Target provider", "openai")
    set_field(page, "Target model", "gpt-4o-mini")
    with page.expect_response(lambda r: r.url.endswith("/rules/dry-run")) as preview:
        page.get_by_role("button", name="Preview").click()
    assert preview.value.status == 200
    operator.page.wait_for_load_state("networkidle")
    operator.screenshot("rules-new-rule-preview")

    with page.expect_response(
        lambda r: r.url.endswith(f"/orgs/{stack.demo_org}/rules") and r.request.method == "POST"
    ) as saved:
        page.get_by_role("button", name="Save rule").click()
    assert saved.value.status == 201, saved.value.text()
    started = time.monotonic()

    # The proxy routes by it within a second.
    while (model := proxy.routed_model()) != "gpt-4o-mini":
        assert time.monotonic() - started < DEADLINE_S, f"still routed to {model}"
        time.sleep(0.02)

    rows = stack.sql(
        "SELECT match_feature, match_model, target_provider, target_model, enabled"
        " FROM routing_rules WHERE org_id = $1 AND name = $2",
        uuid.UUID(stack.demo_org),
        name,
    )
    assert [tuple(r.values()) for r in rows] == [(FEATURE, "gpt-4o", "openai", "gpt-4o-mini", True)]
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=name))
    for control in ("Move up", "Move down", "Delete"):  # the rule list's controls
        expect(row.get_by_role("button", name=control, exact=True)).to_have_count(1)
    operator.screenshot("rules-after-save")
