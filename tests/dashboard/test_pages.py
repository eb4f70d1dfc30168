"""Every page of the dashboard loads over the demo org's eight days of history with no
console error, no failed request and no error shown, at 1280x800 (and Overview on a
390x844 phone); each is saved as a full-page screenshot in build/screenshots/."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import PHONE, Browser, Browsers, Stack, settle

pytestmark = pytest.mark.timeout(240)

# Elements reaching past the viewport's right edge that no scrolling container clips
# (what makes the page scroll sideways), outermost first, for the message.
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  const clipped = (e) => {
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== "visible") return true;
    }
    return false;
  };
  const out = [];
  for (const e of document.querySelectorAll("body *")) {
    const right = e.getBoundingClientRect().right;
    if (right <= width + 0.5 || clipped(e) || out.some((o) => o.contains(e))) continue;
    out.push(e);
  }
  return out.slice(0, 5).map((e) => `<${e.tagName.toLowerCase()} class="${e.className}">`
    + `${(e.textContent || "").slice(0, 30)}</${e.tagName.toLowerCase()}>`
    + ` reaches ${Math.round(e.getBoundingClientRect().right)} px`).join(", ");
}"""


@pytest.mark.parametrize("period", ["24h", "7d", "30d"])
def test_overview_of_each_period(operator: Browser, stack: Stack, period: str) -> None:
    operator.goto(f"/orgs/{stack.demo_org}?period={period}")
    settle(operator, "Overview")
    nav = operator.page.get_by_role("navigation", name="Main")
    for name in ("Overview", "Requests", "Failures", "Anomalies", "Recommendations", "Rules",
                 "Settings"):  # fmt: skip
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    # The operator sees every org: the switcher, on this one.
    switcher = operator.page.get_by_role("combobox", name="Organisation")
    expect(switcher.locator("option:checked")).to_have_text("demo")
    operator.screenshot(f"overview-{period}")


def test_overview_on_a_phone(browsers: Browsers, stack: Stack) -> None:
    phone = browsers.operator(viewport=PHONE, is_mobile=True, has_touch=True)
    phone.goto(f"/orgs/{stack.demo_org}")
    settle(phone, "Overview")
    page = phone.page
    phone.screenshot("overview-phone")
    width = page.evaluate("document.documentElement.scrollWidth")
    overflowing = page.evaluate(OVERFLOWING)
    # The nav folds behind "Menu".
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Requests", exact=True)).to_be_hidden()
    page.get_by_role("button", name="Menu").click()
    expect(nav.get_by_role("link", name="Requests", exact=True)).to_be_visible()
    phone.screenshot("overview-phone-menu")
    nav.get_by_role("link", name="Requests", exact=True).click()
    settle(phone, "Requests")
    # Tables scroll inside their containers; the page itself never scrolls sideways.
    assert width <= PHONE["width"], (
        f"the Overview is {width} px wide on a {PHONE['width']} px phone: {overflowing}"
    )


def test_requests_and_one_requests_details(operator: Browser, stack: Stack) -> None:
    operator.goto(f"/orgs/{stack.demo_org}/requests")
    settle(operator, "Requests")
    page = operator.page
    rows = page.locator("table tbody tr")
    expect(rows.first).to_be_visible()
    assert rows.count() > 5
    operator.screenshot("requests")
    page.get_by_role("button", name="Show details").first.click()
    expect(page.get_by_role("button", name="Hide details")).to_have_count(1)
    details = page.get_by_label("Request details")
    expect(details).to_be_visible()
    expect(details).to_contain_text("Requested model")
    operator.screenshot("requests-details")


def test_failures(operator: Browser, stack: Stack) -> None:
    operator.goto(f"/orgs/{stack.demo_org}/failures")
    settle(operator, "Failures")
    expect(operator.page.locator("table tbody tr").first).to_be_visible()
    operator.screenshot("failures")


def test_anomalies_and_one_anomalys_page(operator: Browser, stack: Stack) -> None:
    kinds = {
        r["kind"]: str(r["id"])
        for r in stack.sql(
            "SELECT DISTINCT ON (kind) kind, id FROM anomalies WHERE org_id = $1"
            " ORDER BY kind, detected_at DESC",
            uuid.UUID(stack.demo_org),
        )
    }
    assert {"cost", "error_rate"} <= set(kinds), kinds
    operator.goto(f"/orgs/{stack.demo_org}/anomalies")
    settle(operator, "Anomalies")
    operator.screenshot("anomalies")

    # The page an alert email links to.
    operator.goto(f"/orgs/{stack.demo_org}/anomalies/{kinds['cost']}")
    settle(operator, "Anomaly")
    expect(operator.page.get_by_text(re.compile("cost", re.I)).first).to_be_visible()
    operator.screenshot("anomaly")


def test_recommendations(operator: Browser, stack: Stack) -> None:
    operator.goto(f"/orgs/{stack.demo_org}/recommendations")
    settle(operator, "Recommendations")
    expect(operator.page.get_by_role("button", name="Create a rule").first).to_be_visible()
    operator.screenshot("recommendations")


def test_rules(operator: Browser, stack: Stack) -> None:
    operator.goto(f"/orgs/{stack.demo_org}/rules")
    settle(operator, "Rules")
    expect(operator.page.get_by_role("button", name="New rule")).to_be_visible()
    operator.screenshot("rules")


def test_settings(operator: Browser, stack: Stack) -> None:
    operator.goto(f"/orgs/{stack.demo_org}/settings")
    settle(operator, "Settings")
    expect(operator.page.get_by_role("button", name="Save settings")).to_be_visible()
    operator.screenshot("settings")


def test_an_unknown_page_says_not_found(operator: Browser, stack: Stack) -> None:
    operator.goto("/no/such/page")
    expect(operator.page.get_by_text(re.compile("not found", re.I)).first).to_be_visible()
    operator.screenshot("not-found")
