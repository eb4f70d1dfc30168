import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { lazy, Suspense, useState } from "react";
import { BrowserRouter, Route, Routes, useLocation } from "react-router-dom";
import { ApiError } from "./api/client";
import { RequireAuth } from "./auth/RequireAuth";
import { AuthRoot } from "./auth/SessionProvider";
import { Loading, RouteErrorBoundary } from "./components";
import { HomePage, NotFoundPage, OrgLayout } from "./layouts";

const OverviewPage = lazy(() => import("./pages/OverviewPage"));
const RequestsPage = lazy(() => import("./pages/RequestsPage"));
const FailuresPage = lazy(() => import("./pages/FailuresPage"));
const AnomaliesPage = lazy(() => import("./pages/AnomaliesPage"));
const AnomalyPage = lazy(() => import("./pages/AnomalyPage"));
const SignInPage = lazy(() => import("./pages/SignInPage"));
const AuthCallbackPage = lazy(() => import("./pages/AuthCallbackPage"));
// The manage pages (another owner): default exports at these paths.
const RecommendationsPage = lazy(() => import("./pages/RecommendationsPage"));
const RulesPage = lazy(() => import("./pages/RulesPage"));
const SettingsPage = lazy(() => import("./pages/SettingsPage"));
const InviteAcceptPage = lazy(() => import("./pages/InviteAcceptPage"));

export function makeAppQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        staleTime: 30_000,
        refetchOnWindowFocus: false,
        // Retry once on network and server errors, never on 4xx (they will not change).
        retry: (count, error) =>
          count < 1 && !(error instanceof ApiError && error.status >= 400 && error.status < 500),
      },
      mutations: { retry: false },
    },
  });
}

export function AppRoutes() {
  const location = useLocation();
  // The outer boundary covers the pages outside an organisation (sign-in, callback,
  // invites); OrgLayout has its own inside the shell.
  return (
    <RouteErrorBoundary resetKey={location.pathname}>
      <Suspense fallback={<Loading />}>
        <Routes>
          <Route path="/signin" element={<SignInPage />} />
          <Route path="/auth/callback" element={<AuthCallbackPage />} />
          <Route path="/invites/accept" element={<InviteAcceptPage />} />
          <Route
            path="/"
            element={
              <RequireAuth>
                <HomePage />
              </RequireAuth>
            }
          />
          <Route
            path="/orgs/:orgId"
            element={
              <RequireAuth>
                <OrgLayout />
              </RequireAuth>
            }
          >
            <Route index element={<OverviewPage />} />
            <Route path="requests" element={<RequestsPage />} />
            <Route path="failures" element={<FailuresPage />} />
            <Route path="anomalies" element={<AnomaliesPage />} />
            <Route path="anomalies/:anomalyId" element={<AnomalyPage />} />
            <Route path="recommendations" element={<RecommendationsPage />} />
            <Route path="rules" element={<RulesPage />} />
            <Route path="settings" element={<SettingsPage />} />
            <Route path="*" element={<NotFoundPage />} />
          </Route>
          <Route path="*" element={<NotFoundPage />} />
        </Routes>
      </Suspense>
    </RouteErrorBoundary>
  );
}

export default function App() {
  const [queryClient] = useState(makeAppQueryClient);
  return (
    <QueryClientProvider client={queryClient}>
      <BrowserRouter>
        <AuthRoot>
          <AppRoutes />
        </AuthRoot>
      </BrowserRouter>
    </QueryClientProvider>
  );
}
