// renderWithProviders: a page under the providers the app gives it (a QueryClient with
// retry off, a MemoryRouter with the app's route patterns so useParams works, and a stub
// session), for component tests.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, type RenderResult } from "@testing-library/react";
import userEvent, { type UserEvent } from "@testing-library/user-event";
import type { ReactElement } from "react";
import { MemoryRouter, Route, Routes, matchPath, useLocation } from "react-router-dom";
import { vi } from "vitest";
import type { Me, PublicConfig } from "../api/types";
import { setCredentials } from "../auth/credentials";
import { RequireAuth } from "../auth/RequireAuth";
import { SessionContext, type Session } from "../auth/SessionContext";
import { ME_QUERY_KEY } from "../auth/useMe";
import { PUBLIC_PATHS, ROUTE_PATTERNS } from "../paths";

export const TEST_ORG_ID = "o1";

export const testConfig: PublicConfig = {
  oidc: null,
  operator_sign_in: true,
  proxy_url: "http://localhost:8080",
  version: "test",
};

/** A user with one organisation, "o1" (Acme), in the given role (default owner). */
export function makeMe(role: Me["orgs"][number]["role"] = "owner", extra: Partial<Me> = {}): Me {
  return {
    operator: false,
    email: "user@example.com",
    orgs: [{ id: TEST_ORG_ID, name: "Acme", role }],
    ...extra,
  };
}

export function makeSession(overrides: Partial<Session> = {}): Session {
  return {
    status: "signedIn",
    kind: "oidc",
    config: testConfig,
    signInWithSecret: vi.fn(async () => undefined),
    signInWithSso: vi.fn(async () => undefined),
    signOut: vi.fn(async () => undefined),
    oidcError: null,
    ...overrides,
  };
}

export function makeQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: { retry: false, gcTime: Infinity, refetchOnWindowFocus: false },
      mutations: { retry: false },
    },
  });
}

/** Shows the router's current location, for asserting navigation and query strings. */
export function LocationProbe() {
  const location = useLocation();
  return (
    <output data-testid="location" hidden>
      {location.pathname + location.search}
    </output>
  );
}

/** The probe's current location ("/orgs/o1/requests?status=5xx"). */
export function currentLocation(): string {
  return document.querySelector('[data-testid="location"]')?.textContent ?? "";
}

export interface RenderOptions {
  /** The URL to start at, e.g. "/orgs/o1/rules?new=1". Default "/orgs/o1". */
  route?: string;
  /** /api/me's answer, seeded into the query cache (null: not seeded). Default makeMe(). */
  me?: Me | null;
  /** Overrides of the stub session (status "signedOut" to test the redirect). */
  session?: Partial<Session>;
  queryClient?: QueryClient;
}

export interface RenderWithProvidersResult extends RenderResult {
  user: UserEvent;
  queryClient: QueryClient;
  session: Session;
}

/**
 * Renders `ui` at `route`: the route pattern of the app that matches `route` renders `ui`
 * (behind RequireAuth, as in the app, except the public pages); every other pattern
 * renders a stub `<p data-testid="stub-page">pattern</p>` (so redirects can be seen).
 */
export function renderWithProviders(
  ui: ReactElement,
  options: RenderOptions = {},
): RenderWithProvidersResult {
  const route = options.route ?? `/orgs/${TEST_ORG_ID}`;
  const queryClient = options.queryClient ?? makeQueryClient();
  const me = options.me === undefined ? makeMe() : options.me;
  if (me) queryClient.setQueryData(ME_QUERY_KEY, me);
  queryClient.setQueryData(["config"], options.session?.config ?? testConfig);
  const session = makeSession(options.session);
  if (session.status === "signedIn") {
    setCredentials(
      session.kind === "admin"
        ? { kind: "admin", csrfToken: "test-csrf" }
        : { kind: "oidc", accessToken: "test-token" },
    );
  }
  const pathname = route.split(/[?#]/)[0] ?? route;
  const matched = ROUTE_PATTERNS.find((p) => matchPath(p, pathname)) ?? null;
  const isPublic = (p: string) => (PUBLIC_PATHS as readonly string[]).includes(p);
  const user = userEvent.setup();
  const result = render(
    <QueryClientProvider client={queryClient}>
      <SessionContext.Provider value={session}>
        <MemoryRouter initialEntries={[route]}>
          <LocationProbe />
          <Routes>
            {ROUTE_PATTERNS.map((pattern) => (
              <Route
                key={pattern}
                path={pattern}
                element={
                  pattern === matched ? (
                    isPublic(pattern) ? (
                      ui
                    ) : (
                      <RequireAuth>{ui}</RequireAuth>
                    )
                  ) : (
                    <p data-testid="stub-page">{pattern}</p>
                  )
                }
              />
            ))}
            <Route path="*" element={matched ? <p data-testid="stub-page">*</p> : ui} />
          </Routes>
        </MemoryRouter>
      </SessionContext.Provider>
    </QueryClientProvider>,
  );
  return { ...result, user, queryClient, session };
}
