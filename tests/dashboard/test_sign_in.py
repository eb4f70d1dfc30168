"""Signing in and out: with the admin secret (an HttpOnly, SameSite=Strict session
cookie the app never sees), and with SSO against the local OIDC issuer (Authorization
Code + PKCE, back to the page the user was going to)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import (
    ADMIN_SECRET,
    OIDC_USER,
    VIEWER_ORG,
    Browser,
    Stack,
    settle,
    sign_in_with_sso,
)

pytestmark = pytest.mark.timeout(240)


def test_an_operator_signs_in_with_the_admin_secret_and_out_again(
    anonymous: Browser, stack: Stack
) -> None:
    page = anonymous.page
    anonymous.goto(f"/orgs/{stack.demo_org}/rules")
    expect(page).to_have_url(re.compile(r"/signin\?next="))
    expect(page.get_by_role("heading", level=1, name="Sign in", exact=True)).to_be_visible()
    anonymous.screenshot("signin")

    page.get_by_label("Admin secret").fill(ADMIN_SECRET)
    page.get_by_role("button", name="Sign in", exact=True).click()

    # Back where the operator was going, signed in.
    expect(page).to_have_url(f"{stack.url}/orgs/{stack.demo_org}/rules")
    expect(page.get_by_role("heading", level=1, name="Rules", exact=True)).to_be_visible()
    cookies = {c["name"]: c for c in anonymous.context.cookies()}
    session = cookies["lectr_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert "lectr_session" not in page.evaluate("document.cookie")
    assert page.evaluate("JSON.stringify(localStorage)") == "{}"

    # A reload keeps the session (the cookie, and the CSRF token fetched again).
    page.reload()
    expect(page.get_by_role("heading", level=1, name="Rules", exact=True)).to_be_visible()

    with page.expect_response(
        lambda r: r.url.endswith("/api/session") and r.request.method == "DELETE"
    ) as signed_out:
        page.get_by_role("button", name="Sign out").click()
    assert signed_out.value.status == 204
    expect(page).to_have_url(re.compile(r"/signin"))
    assert "lectr_session" not in {c["name"] for c in anonymous.context.cookies()}

    page.goto(f"{stack.url}/orgs/{stack.demo_org}")
    expect(page).to_have_url(re.compile(r"/signin"))
    page.reload()
    expect(page).to_have_url(re.compile(r"/signin"))
    expect(page.get_by_role("heading", level=1, name="Sign in", exact=True)).to_be_visible()


def test_a_wrong_admin_secret_shows_an_error(anonymous: Browser, stack: Stack) -> None:
    page = anonymous.page
    anonymous.problems.allow("/api/session", 401)  # the wrong secret's answer, expected
    anonymous.goto("/signin")
    page.get_by_label("Admin secret").fill("not-the-secret")
    with page.expect_response(
        lambda r: r.url.endswith("/api/session") and r.request.method == "POST"
    ) as answer:
        page.get_by_role("button", name="Sign in", exact=True).click()
    assert answer.value.status == 401
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/signin"))
    assert "lectr_session" not in {c["name"] for c in anonymous.context.cookies()}
    anonymous.screenshot("signin-wrong-secret")


def test_a_user_signs_in_with_sso_and_sees_their_organisations(
    anonymous: Browser, stack: Stack
) -> None:
    page = anonymous.page
    requests_before = len(stack.issuer.token_requests)
    sign_in_with_sso(anonymous)

    # Through /authorize and /token (PKCE) and back to /: the first of the user's orgs.
    expect(page).to_have_url(re.compile(r"/orgs/[0-9a-f-]{36}"))
    expect(page.get_by_role("heading", level=1, name="Overview", exact=True)).to_be_visible()
    authorize = stack.issuer.authorize_requests[-1]
    assert authorize["code_challenge_method"] == "S256"
    assert authorize["audience"] == stack.issuer.audience
    token = stack.issuer.token_requests[requests_before:]
    assert [t["grant_type"] for t in token] == ["authorization_code"]
    assert token[0]["code_verifier"]

    switcher = page.get_by_role("combobox", name="Organisation")
    expect(switcher).to_be_visible()
    names = switcher.locator("option").all_inner_texts()
    assert sorted(names) == sorted(["demo", VIEWER_ORG])
    expect(page.get_by_text(OIDC_USER.email)).to_be_visible()
    # Tokens live in sessionStorage, never in localStorage or a readable cookie.
    assert page.evaluate("JSON.stringify(localStorage)") == "{}"
    assert "oidc.user:" in page.evaluate("Object.keys(sessionStorage).join(' ')")
    anonymous.screenshot("overview-sso-viewer")

    switcher.select_option(label=VIEWER_ORG)
    expect(page).to_have_url(re.compile(rf"/orgs/{stack.viewer_org}"))

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/signin"))
    page.reload()
    expect(page).to_have_url(re.compile(r"/signin"))


def test_sso_sign_in_returns_to_the_page_the_user_was_going_to(
    anonymous: Browser, stack: Stack
) -> None:
    sign_in_with_sso(anonymous, f"/orgs/{stack.demo_org}/anomalies")
    expect(anonymous.page).to_have_url(f"{stack.url}/orgs/{stack.demo_org}/anomalies")
    settle(anonymous, "Anomalies")


BAD_INVITE = "/invites/accept#token=lc_inv_not-a-real-token-0123456789"


def test_an_invite_link_with_a_bad_token_shows_the_apis_error(
    anonymous: Browser, stack: Stack
) -> None:
    page = anonymous.page
    anonymous.problems.allow("/api/invites/accept", 404)
    sign_in_with_sso(anonymous)
    anonymous.goto(BAD_INVITE)
    expect(page.get_by_role("heading", level=1, name="Accept invite", exact=True)).to_be_visible()
    # The API's own message, in an alert.
    expect(page.get_by_role("alert")).to_contain_text(
        "no such invite: it was withdrawn or replaced"
    )
    assert "lc_inv_" not in page.url  # the token left the address bar
    anonymous.screenshot("invite-accept-bad-token")


def test_an_invite_link_opened_signed_out_is_tried_after_sign_in(
    anonymous: Browser, stack: Stack
) -> None:
    page = anonymous.page
    anonymous.problems.allow("/api/invites/accept", 404)
    anonymous.goto(BAD_INVITE)
    expect(page).to_have_url(re.compile(r"/signin"))
    assert "lc_inv_" not in page.url  # the token waits in sessionStorage, not in a URL
    page.get_by_role("button", name="Sign in with SSO").click()
    expect(page).to_have_url(f"{stack.url}/invites/accept")
    expect(page.get_by_role("alert")).to_contain_text("no such invite")
