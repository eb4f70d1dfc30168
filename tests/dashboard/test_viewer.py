"""A viewer (an SSO user whose role is ``viewer``) sees the demo org's pages with none of
the write controls: they are not rendered at all, not merely disabled."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import Browser, Stack, settle, sign_in_with_sso

pytestmark = pytest.mark.timeout(240)

# Every control that changes something, by its accessible name.
WRITE_CONTROLS = (
    "New rule", "Save rule", "Delete", "Move up", "Move down", "Preview", "Create key",
    "Revoke", "Invite", "Save settings", "Save Azure configuration", "Dismiss",
    "Create a rule", "Save limits",
    # and the Settings page's own: a member's removal, recipients, Azure deployments
    "Remove", "Add", "Add deployment", "Edit",
)  # fmt: skip
PAGES = {
    "rules": ("Rules", "rules-viewer"),
    "settings": ("Settings", "settings-viewer"),
    "anomalies": ("Anomalies", "anomalies-viewer"),
    "recommendations": ("Recommendations", "recommendations-viewer"),
}


def assert_no_write_controls(browser: Browser) -> None:
    for name in WRITE_CONTROLS:
        controls = browser.page.get_by_role("button", name=name, exact=True)
        assert controls.count() == 0, f"a viewer sees {name!r} on {browser.page.url}"
        links = browser.page.get_by_role("link", name=name, exact=True)
        assert links.count() == 0, f"a viewer sees a link {name!r} on {browser.page.url}"


def test_a_viewer_sees_no_write_controls(anonymous: Browser, stack: Stack) -> None:
    page = anonymous.page
    # A rule to see (one a viewer may not edit, reorder or delete).
    rule = {
        "name": "seen by viewers",
        "match_feature": "viewer-only",
        "target_model": "gpt-4o-mini",
    }
    status, body = stack.api("POST", f"/api/orgs/{stack.demo_org}/rules", rule)
    assert status == 201, body
    sign_in_with_sso(anonymous)
    # The SSO session lives in sessionStorage: it survives a reload of the tab.
    anonymous.goto(f"/orgs/{stack.demo_org}")
    settle(anonymous, "Overview")
    for section, (heading, screenshot) in PAGES.items():
        # Client-side navigation keeps the SSO session (sessionStorage) and is quicker.
        page.get_by_role("navigation", name="Main").get_by_role(
            "link", name=heading, exact=True
        ).click()
        expect(page).to_have_url(re.compile(rf"/orgs/{stack.demo_org}/{section}$"))
        settle(anonymous, heading)
        assert_no_write_controls(anonymous)
        if section == "rules":
            expect(page.get_by_role("rowheader", name="seen by viewers")).to_be_visible()
            expect(page.get_by_role("checkbox")).to_have_count(0)  # no on/off switch
        anonymous.screenshot(screenshot)

    # One anomaly's own page has no Dismiss either.
    rows = stack.sql("SELECT id FROM anomalies WHERE org_id = $1::uuid", stack.demo_org)
    anomaly = rows[0]["id"]
    anonymous.goto(f"/orgs/{stack.demo_org}/anomalies/{anomaly}")
    settle(anonymous, "Anomaly")
    assert_no_write_controls(anonymous)
