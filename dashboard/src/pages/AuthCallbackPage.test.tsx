import { act, screen, waitFor } from "@testing-library/react";
import { useNavigate } from "react-router-dom";
import { describe, expect, it, vi } from "vitest";
import { mockApi } from "../test/mockApi";
import { currentLocation, renderWithProviders, testConfig } from "../test/render";
import AuthCallbackPage, { nextFromState } from "./AuthCallbackPage";

const auth = vi.hoisted(() => ({
  state: { isLoading: true, isAuthenticated: false, activeNavigator: undefined, error: undefined } as Record<string, unknown>,
}));
vi.mock("react-oidc-context", () => ({ useAuth: () => auth.state }));

const OIDC = { ...testConfig, oidc: { issuer: "https://issuer.example/", client_id: "c", audience: null } };

/** What the provider's onSigninCallback does once the code is exchanged. */
function ProviderNavigates({ to }: { to: string }) {
  const navigate = useNavigate();
  return (
    <button type="button" onClick={() => navigate(to, { replace: true })}>
      provider navigates
    </button>
  );
}

describe("AuthCallbackPage", () => {
  it("goes to sign-in when SSO is not configured", async () => {
    mockApi({});
    renderWithProviders(<AuthCallbackPage />, { route: "/auth/callback", session: { status: "signedOut" } });
    await waitFor(() => expect(currentLocation()).toBe("/signin"));
  });

  it("waits while the sign-in completes", () => {
    mockApi({});
    auth.state = { isLoading: true, isAuthenticated: false };
    renderWithProviders(<AuthCallbackPage />, { route: "/auth/callback?code=x&state=y", session: { status: "loading", config: OIDC } });
    expect(screen.getByRole("status")).toHaveTextContent("Signing you in");
  });

  it("does not redirect to / when the user is loaded before the provider navigates to next", async () => {
    mockApi({});
    // react-oidc-context marks the user loaded inside signinCallback(), before it calls
    // onSigninCallback (which navigates to the saved next): the page must not compete.
    auth.state = {
      isLoading: false,
      isAuthenticated: true,
      user: { state: { next: "/orgs/o1/anomalies" } },
    };
    const { user } = renderWithProviders(
      <>
        <AuthCallbackPage />
        <ProviderNavigates to="/orgs/o1/anomalies" />
      </>,
      { route: "/auth/callback?code=x&state=y", session: { status: "signedIn", config: OIDC } },
    );
    await act(async () => {
      await new Promise((resolve) => setTimeout(resolve, 20));
    });
    expect(currentLocation()).toBe("/auth/callback?code=x&state=y");
    expect(screen.getByRole("status")).toHaveTextContent("Signing you in");

    await user.click(screen.getByRole("button", { name: "provider navigates" }));
    await act(async () => {
      await new Promise((resolve) => setTimeout(resolve, 20));
    });
    expect(currentLocation()).toBe("/orgs/o1/anomalies");
  });

  it("opened signed in without a pending sign-in, goes once to the next saved in the OIDC state", async () => {
    mockApi({});
    auth.state = {
      isLoading: false,
      isAuthenticated: true,
      user: { state: { next: "/orgs/o1/anomalies?status=open" } },
    };
    renderWithProviders(<AuthCallbackPage />, { route: "/auth/callback", session: { status: "signedIn", config: OIDC } });
    await waitFor(() => expect(currentLocation()).toBe("/orgs/o1/anomalies?status=open"));
    await act(async () => {
      await new Promise((resolve) => setTimeout(resolve, 20));
    });
    expect(currentLocation()).toBe("/orgs/o1/anomalies?status=open");
  });

  it("never follows an unsafe next", () => {
    expect(nextFromState({ next: "//evil.example/x" })).toBe("/");
    expect(nextFromState({ next: "https://evil.example/" })).toBe("/");
    expect(nextFromState({ next: "/auth/callback?code=1" })).toBe("/");
    expect(nextFromState({ next: 42 })).toBe("/");
    expect(nextFromState(undefined)).toBe("/");
    expect(nextFromState({ next: "/invites/accept" })).toBe("/invites/accept");
  });

  it("shows a failed sign-in", () => {
    mockApi({});
    auth.state = { isLoading: false, isAuthenticated: false, error: new Error("invalid_grant") };
    renderWithProviders(<AuthCallbackPage />, { route: "/auth/callback?code=x&state=y", session: { status: "signedOut", config: OIDC } });
    expect(screen.getByRole("alert")).toHaveTextContent("invalid_grant");
    expect(screen.getByRole("link", { name: "Back to sign-in" })).toHaveAttribute("href", "/signin");
  });
});
