import { screen, waitFor } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import type { Schemas } from "../api/types";
import { apiError, mockApi, pending } from "../test/mockApi";
import { currentLocation, makeMe, renderWithProviders } from "../test/render";
import InviteAcceptPage, { INVITE_TOKEN_KEY, tokenFromHash } from "./InviteAcceptPage";


const ACCEPT = "POST /api/invites/accept";
const ROUTE = "/invites/accept#token=lc_inv_abc123";

const ACCEPTED: Schemas["InviteAccepted"] = {
  org_id: "o2",
  org_name: "Globex",
  member: {
    id: "m9",
    email: "user@example.com",
    role: "admin",
    oidc_subject: "auth0|9",
    created_at: "2026-12-02T15:00:00Z",
  },
};

describe("InviteAcceptPage", () => {
  it("reads the token from the hash", () => {
    expect(tokenFromHash("#token=lc_inv_abc")).toBe("lc_inv_abc");
    expect(tokenFromHash("#foo=1")).toBeNull();
    expect(tokenFromHash("")).toBeNull();
  });

  it("accepts the invite once signed in, and links to the organisation", async () => {
    const api = mockApi({ [ACCEPT]: ACCEPTED, "GET /api/me": makeMe("owner") });
    renderWithProviders(<InviteAcceptPage />, { route: ROUTE });
    expect(screen.getByRole("heading", { level: 1, name: "Accept invite" })).toBeInTheDocument();
    expect(await screen.findByText(/You joined/)).toHaveTextContent("You joined Globex as admin.");
    expect(screen.getByRole("link", { name: "Open Globex" })).toHaveAttribute("href", "/orgs/o2");
    expect(api.callsTo(ACCEPT)).toHaveLength(1);
    expect(api.callsTo(ACCEPT)[0]?.body).toEqual({ token: "lc_inv_abc123" });
    // the token leaves the URL and the tab's storage once used
    expect(currentLocation()).toBe("/invites/accept");
    expect(window.sessionStorage.getItem(INVITE_TOKEN_KEY)).toBeNull();
  });

  it("shows accepting while the API answers", async () => {
    mockApi({ [ACCEPT]: () => pending() });
    renderWithProviders(<InviteAcceptPage />, { route: ROUTE });
    expect(await screen.findByRole("status")).toHaveTextContent("Accepting the invite…");
  });

  it("shows a used invite's 409 with the API's message", async () => {
    mockApi({ [ACCEPT]: apiError(409, "conflict", "this invite was already used") });
    renderWithProviders(<InviteAcceptPage />, { route: ROUTE });
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("This invite cannot be used");
    expect(alert).toHaveTextContent("this invite was already used");
    expect(window.sessionStorage.getItem(INVITE_TOKEN_KEY)).toBeNull();
  });

  it("shows an unknown or expired invite's 404", async () => {
    mockApi({ [ACCEPT]: apiError(404, "not_found", "no such invite, or it has expired") });
    renderWithProviders(<InviteAcceptPage />, { route: ROUTE });
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("This invite is not valid");
    expect(alert).toHaveTextContent("no such invite, or it has expired");
  });

  it("keeps the token for later when an operator session is refused (403)", async () => {
    mockApi({ [ACCEPT]: apiError(403, "forbidden", "sign in as the invited user to accept an invite") });
    renderWithProviders(<InviteAcceptPage />, { route: ROUTE, session: { kind: "admin" } });
    expect(await screen.findByRole("alert")).toHaveTextContent("sign in as the invited user");
    expect(window.sessionStorage.getItem(INVITE_TOKEN_KEY)).toBe("lc_inv_abc123");
  });

  it("signed out: keeps the token and goes to sign in, coming back here", async () => {
    const api = mockApi({});
    renderWithProviders(<InviteAcceptPage />, {
      route: ROUTE,
      me: null,
      session: { status: "signedOut", kind: null },
    });
    await waitFor(() => expect(currentLocation()).toBe("/signin?next=%2Finvites%2Faccept"));
    expect(window.sessionStorage.getItem(INVITE_TOKEN_KEY)).toBe("lc_inv_abc123");
    expect(api.calls).toHaveLength(0);
    // the token never goes into a query string
    expect(currentLocation()).not.toContain("lc_inv_");
  });

  it("after signing in, accepts the token kept in sessionStorage", async () => {
    window.sessionStorage.setItem(INVITE_TOKEN_KEY, "lc_inv_kept");
    const api = mockApi({ [ACCEPT]: ACCEPTED, "GET /api/me": makeMe("owner") });
    renderWithProviders(<InviteAcceptPage />, { route: "/invites/accept" });
    expect(await screen.findByText(/You joined/)).toBeInTheDocument();
    expect(api.callsTo(ACCEPT)[0]?.body).toEqual({ token: "lc_inv_kept" });
  });

  it("waits while the session is being checked", () => {
    const api = mockApi({});
    renderWithProviders(<InviteAcceptPage />, { route: ROUTE, me: null, session: { status: "loading" } });
    expect(screen.getByRole("status")).toHaveTextContent("Checking your session…");
    expect(api.calls).toHaveLength(0);
  });

  it("explains a link without a token", () => {
    const api = mockApi({});
    renderWithProviders(<InviteAcceptPage />, { route: "/invites/accept" });
    expect(screen.getByRole("alert")).toHaveTextContent("No invite token");
    expect(api.calls).toHaveLength(0);
  });
});
