import { QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter } from "react-router-dom";
import { describe, expect, it } from "vitest";
import { AppRoutes } from "./App";
import type { Me } from "./api/types";
import { SessionContext } from "./auth/SessionContext";
import { SessionProvider } from "./auth/SessionProvider";
import { ME_QUERY_KEY } from "./auth/useMe";
import { makeSummary } from "./test/fixtures";
import { apiError, mockApi } from "./test/mockApi";
import { LocationProbe, currentLocation, makeMe, makeQueryClient, makeSession, testConfig } from "./test/render";

const TWO_ORGS: Me = {
  operator: false,
  email: "ada@example.com",
  orgs: [
    { id: "o1", name: "Acme", role: "owner" },
    { id: "o2", name: "Globex", role: "viewer" },
  ],
};

function renderRoutes(route: string, me: Me | null = makeMe()) {
  const queryClient = makeQueryClient();
  if (me) queryClient.setQueryData(ME_QUERY_KEY, me);
  const session = makeSession();
  const user = userEvent.setup();
  render(
    <QueryClientProvider client={queryClient}>
      <SessionContext.Provider value={session}>
        <MemoryRouter initialEntries={[route]}>
          <LocationProbe />
          <AppRoutes />
        </MemoryRouter>
      </SessionContext.Provider>
    </QueryClientProvider>,
  );
  return { user, session };
}

describe("app shell and routes", () => {
  it("redirects / to the first organisation", async () => {
    mockApi({
      "GET /api/orgs/o1/summary": makeSummary(),
      "GET /api/orgs/o1/anomalies": { anomalies: [] },
    });
    renderRoutes("/", TWO_ORGS);
    await waitFor(() => expect(currentLocation()).toBe("/orgs/o1"));
    expect(await screen.findByRole("heading", { level: 1, name: "Overview" })).toBeInTheDocument();
    await screen.findByRole("region", { name: "Requests" });
  });

  it("tells a user without organisations what to do", async () => {
    mockApi({});
    renderRoutes("/", { operator: false, email: "new@example.com", orgs: [] });
    expect(await screen.findByText("You are not a member of any organisation yet")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Sign out" })).toBeInTheDocument();
  });

  it("shows the header, the main navigation and the page", async () => {
    mockApi({ "GET /api/orgs/o1/failures": { failures: [], next_cursor: null } });
    const { user, session } = renderRoutes("/orgs/o1/failures");
    expect(await screen.findByRole("heading", { level: 1, name: "Failures" })).toBeInTheDocument();
    const nav = screen.getByRole("navigation", { name: "Main" });
    const names = within(nav).getAllByRole("link").map((a) => a.textContent);
    expect(names).toEqual(["Overview", "Requests", "Failures", "Anomalies", "Recommendations", "Rules", "Settings"]);
    expect(within(nav).getByRole("link", { name: "Failures" })).toHaveAttribute("aria-current", "page");
    expect(within(nav).getByRole("link", { name: "Overview" })).toHaveAttribute("href", "/orgs/o1");
    expect(screen.getByText("Lectr")).toBeInTheDocument();
    expect(screen.getByText("Acme")).toBeInTheDocument();
    expect(screen.queryByRole("combobox", { name: "Organisation" })).not.toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Sign out" }));
    expect(session.signOut).toHaveBeenCalled();
  });

  it("switches organisation and keeps the section", async () => {
    mockApi({
      "GET /api/orgs/o1/failures": { failures: [], next_cursor: null },
      "GET /api/orgs/o2/failures": { failures: [], next_cursor: null },
    });
    const { user } = renderRoutes("/orgs/o1/failures?feature=chat", TWO_ORGS);
    const select = await screen.findByRole("combobox", { name: "Organisation" });
    expect(select).toHaveValue("o1");
    await user.selectOptions(select, "o2");
    expect(currentLocation()).toBe("/orgs/o2/failures");
  });

  it("says not found for an organisation the user is not in, and for unknown paths", async () => {
    mockApi({});
    renderRoutes("/orgs/zzz/requests");
    expect(await screen.findByRole("heading", { level: 1, name: "Page not found" })).toBeInTheDocument();
  });

  it("has a page-not-found route", async () => {
    mockApi({});
    renderRoutes("/no/such/page");
    expect(await screen.findByRole("heading", { level: 1, name: "Page not found" })).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "Go home" })).toHaveAttribute("href", "/");
  });

  it("signs out and returns to sign-in when the API answers 401", async () => {
    mockApi({
      "GET /api/session": { session: { operator: true, csrf_token: "c", expires_at: "2030-01-01T00:00:00Z" } },
      "GET /api/me": apiError(401, "unauthorized", "session expired"),
    });
    const queryClient = makeQueryClient();
    render(
      <QueryClientProvider client={queryClient}>
        <MemoryRouter initialEntries={["/orgs/o1/requests"]}>
          <SessionProvider config={testConfig} oidc={null}>
            <LocationProbe />
            <AppRoutes />
          </SessionProvider>
        </MemoryRouter>
      </QueryClientProvider>,
    );
    await waitFor(() => expect(currentLocation()).toBe("/signin?next=%2Forgs%2Fo1%2Frequests"));
    expect(await screen.findByRole("heading", { level: 1, name: "Sign in" })).toBeInTheDocument();
  });
});
