"""The degradation banner ("observability degraded — data may be incomplete") shows when
proxies dropped events in the period shown, and not otherwise.

Proxies serve every org, so their drops are global; what differs is the period: drops
recorded three days ago are in the 7-day and 30-day summaries, not in the 24-hour one.
Before they are seeded no period shows the banner."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import BANNER, Browser, Stack, settle

pytestmark = pytest.mark.timeout(240)

INSTANCE = "browser-test-dropping-proxy"


def overview(browser: Browser, stack: Stack, period: str) -> None:
    browser.goto(f"/orgs/{stack.demo_org}?period={period}")
    settle(browser, "Overview")


def test_the_banner_shows_for_a_period_with_drops_and_only_then(
    operator: Browser, stack: Stack
) -> None:
    banner = operator.page.get_by_role("alert").filter(has_text=BANNER)
    for period in ("24h", "7d"):
        overview(operator, stack, period)
        expect(banner).to_have_count(0)

    # A proxy's counters (totals since it started), three days ago: 400 of 1,900 dropped.
    stack.sql(
        "INSERT INTO pipeline_health (recorded_at, component, instance, buffer_depth,"
        " events_published, events_dropped, publish_failures)"
        " VALUES (now() - interval '3 days', 'proxy', $1, 0, 1000, 0, 0),"
        "        (now() - interval '3 days' + interval '10 minutes', 'proxy', $1, 0, 1500, 400, 0)",
        INSTANCE,
    )
    stack.lectr("scheduler", "--run-once", "aggregate")

    overview(operator, stack, "7d")
    expect(banner).to_be_visible()
    operator.screenshot("overview-7d-degraded")
    overview(operator, stack, "24h")
    expect(banner).to_have_count(0)
    operator.screenshot("overview-24h-not-degraded")
