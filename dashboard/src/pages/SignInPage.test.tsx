import { QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter, Route, Routes } from "react-router-dom";
import { describe, expect, it, vi } from "vitest";
import { apiFetch } from "../api/client";
import type { PublicConfig } from "../api/types";
import { getCredentials } from "../auth/credentials";
import { SessionProvider, type OidcBridge } from "../auth/SessionProvider";
import { useSession } from "../auth/SessionContext";
import { apiError, mockApi, reply } from "../test/mockApi";
import { LocationProbe, currentLocation, makeQueryClient, renderWithProviders } from "../test/render";
import SignInPage from "./SignInPage";

const ADMIN_ONLY: PublicConfig = { oidc: null, operator_sign_in: true, proxy_url: "http://localhost:8080", version: "1.2.3" };
const SSO_ONLY: PublicConfig = {
  oidc: { issuer: "https://issuer.example/", client_id: "dash", audience: "lectr" },
  operator_sign_in: false,
  proxy_url: "http://localhost:8080",
  version: "1.2.3",
};
const SESSION = { operator: true, csrf_token: "csrf-1", expires_at: "2026-12-03T00:00:00Z" };

function SignOutButton() {
  const session = useSession();
  return (
    <button type="button" onClick={() => void session.signOut()}>
      Sign out
    </button>
  );
}

function bridge(extra: Partial<OidcBridge> = {}): OidcBridge {
  return {
    isLoading: false,
    accessToken: null,
    error: null,
    signIn: vi.fn(async () => undefined),
    signOut: vi.fn(async () => undefined),
    ...extra,
  };
}

/** The real session provider around the sign-in page and a signed-in page. */
function renderApp(config: PublicConfig, route: string, oidc: OidcBridge | null = null) {
  const user = userEvent.setup();
  render(
    <QueryClientProvider client={makeQueryClient()}>
      <MemoryRouter initialEntries={[route]}>
        <SessionProvider config={config} oidc={oidc}>
          <LocationProbe />
          <Routes>
            <Route path="/signin" element={<SignInPage />} />
            <Route path="*" element={<SignOutButton />} />
          </Routes>
        </SessionProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  );
  return { user };
}

describe("SignInPage", () => {
  it("signs in with the admin secret and goes to next", async () => {
    const api = mockApi({
      "GET /api/session": { session: null },
      "POST /api/session": SESSION,
      "DELETE /api/session": reply(204),
      "GET /api/me": { operator: true, email: null, orgs: [] },
    });
    const { user } = renderApp(ADMIN_ONLY, "/signin?next=%2Forgs%2Fo1%2Frequests");
    expect(await screen.findByRole("heading", { level: 1, name: "Sign in" })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Sign in with SSO" })).not.toBeInTheDocument();
    await user.type(screen.getByLabelText("Admin secret"), "s3cret");
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    await waitFor(() => expect(currentLocation()).toBe("/orgs/o1/requests"));
    expect(api.callsTo("POST /api/session")[0]!.body).toEqual({ secret: "s3cret" });
    expect(getCredentials()).toEqual({ kind: "admin", csrfToken: "csrf-1" });

    // Writes carry the CSRF token; reads do not.
    await apiFetch("/api/me");
    expect(api.callsTo("GET /api/me")[0]!.headers["x-csrf-token"]).toBeUndefined();

    await user.click(screen.getByRole("button", { name: "Sign out" }));
    await waitFor(() => expect(currentLocation()).toBe("/signin"));
    expect(api.callsTo("DELETE /api/session")[0]!.headers["x-csrf-token"]).toBe("csrf-1");
    expect(getCredentials()).toBeNull();
  });

  it("says when the secret is wrong", async () => {
    mockApi({
      "GET /api/session": { session: null },
      "POST /api/session": apiError(401, "unauthorized", "invalid credentials"),
    });
    const { user } = renderApp(ADMIN_ONLY, "/signin");
    await user.type(await screen.findByLabelText("Admin secret"), "wrong");
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("That admin secret is not right.");
    expect(currentLocation()).toBe("/signin");
  });

  it("says when there were too many attempts", async () => {
    mockApi({
      "GET /api/session": { session: null },
      "POST /api/session": apiError(429, "rate_limited", "too many attempts", null, { "Retry-After": "42" }),
    });
    const { user } = renderApp(ADMIN_ONLY, "/signin");
    await user.type(await screen.findByLabelText("Admin secret"), "again");
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Too many sign-in attempts: try again in 42 seconds.");
  });

  it("asks for a secret before sending one", async () => {
    const api = mockApi({ "GET /api/session": { session: null } });
    const { user } = renderApp(ADMIN_ONLY, "/signin");
    await user.click(await screen.findByRole("button", { name: "Sign in" }));
    expect(screen.getByRole("alert")).toHaveTextContent("Enter the admin secret.");
    expect(api.callsTo("POST /api/session")).toHaveLength(0);
  });

  it("restores an admin session after a reload", async () => {
    mockApi({ "GET /api/session": { session: SESSION } });
    renderApp(ADMIN_ONLY, "/signin?next=%2Forgs%2Fo2");
    await waitFor(() => expect(currentLocation()).toBe("/orgs/o2"));
    expect(getCredentials()).toEqual({ kind: "admin", csrfToken: "csrf-1" });
  });

  it("offers SSO when the API has OIDC, and passes next along", async () => {
    mockApi({});
    const oidc = bridge();
    const { user } = renderApp(SSO_ONLY, "/signin?next=%2Forgs%2Fo1%2Ffailures", oidc);
    await user.click(await screen.findByRole("button", { name: "Sign in with SSO" }));
    expect(oidc.signIn).toHaveBeenCalledWith("/orgs/o1/failures");
    expect(screen.queryByLabelText("Admin secret")).not.toBeInTheDocument();
  });

  it("shows an OIDC error", async () => {
    mockApi({});
    renderApp(SSO_ONLY, "/signin", bridge({ error: "state mismatch" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("state mismatch");
  });

  it("uses the OIDC access token as Bearer and signs out through the provider", async () => {
    const api = mockApi({ "GET /api/me": { operator: false, email: "a@b.c", orgs: [] } });
    const oidc = bridge({ accessToken: "at-1" });
    const { user } = renderApp(SSO_ONLY, "/orgs/o1", oidc);
    await apiFetch("/api/me");
    expect(api.calls[0]!.headers.authorization).toBe("Bearer at-1");
    await user.click(screen.getByRole("button", { name: "Sign out" }));
    // (The stub keeps its token; the real bridge drops it once the user is removed.)
    await waitFor(() => expect(oidc.signOut).toHaveBeenCalledTimes(1));
  });

  it("sends a signed-in user on to next", async () => {
    mockApi({});
    renderWithProviders(<SignInPage />, { route: "/signin?next=%2Forgs%2Fo1%2Frules" });
    await waitFor(() => expect(currentLocation()).toBe("/orgs/o1/rules"));
  });

  it("ignores a next that leaves the site", async () => {
    mockApi({});
    renderWithProviders(<SignInPage />, { route: "/signin?next=%2F%2Fevil.example" });
    await waitFor(() => expect(currentLocation()).toBe("/"));
  });
});
