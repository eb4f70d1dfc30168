// Layouts for the signed-in part of the app: the org layout (waits for /api/me, checks the
// org is one of the caller's, renders the shell and the page) and the home redirect.
import { Suspense } from "react";
import { Link, Navigate, Outlet, useLocation, useParams } from "react-router-dom";
import { AppShell, EmptyState, ErrorState, Loading, PageHeader, RouteErrorBoundary } from "./components";
import { useMe } from "./auth/useMe";

export function OrgLayout() {
  const { orgId } = useParams();
  const location = useLocation();
  const me = useMe();
  if (me.isPending) return <Loading label="Loading your organisations…" />;
  if (me.isError) {
    return (
      <AppShell me={null} orgId={null}>
        <ErrorState error={me.error} onRetry={() => void me.refetch()} />
      </AppShell>
    );
  }
  const org = me.data.orgs.find((o) => o.id === orgId);
  if (!org || !orgId) {
    return (
      <AppShell me={me.data} orgId={null}>
        <PageHeader title="Page not found" />
        <EmptyState title="This organisation does not exist, or you are not a member of it.">
          <p>
            <Link to="/">Go to your organisations</Link>
          </p>
        </EmptyState>
      </AppShell>
    );
  }
  return (
    <AppShell me={me.data} orgId={orgId}>
      {/* Inside the shell: a page that fails (or whose chunk is gone) keeps header and nav. */}
      <RouteErrorBoundary resetKey={location.pathname}>
        <Suspense fallback={<Loading />}>
          <Outlet />
        </Suspense>
      </RouteErrorBoundary>
    </AppShell>
  );
}

/** "/": the first organisation, or what to do without one. */
export function HomePage() {
  const me = useMe();
  if (me.isPending) return <Loading label="Loading your organisations…" />;
  if (me.isError) {
    return (
      <AppShell me={null} orgId={null}>
        <ErrorState error={me.error} onRetry={() => void me.refetch()} />
      </AppShell>
    );
  }
  const first = me.data.orgs[0];
  if (first) return <Navigate to={`/orgs/${first.id}`} replace />;
  return (
    <AppShell me={me.data} orgId={null}>
      <PageHeader title="Welcome to Lectr" />
      <EmptyState title="You are not a member of any organisation yet">
        <p>
          Ask an admin of your organisation for an invite: the email it sends has a link that
          adds you.
        </p>
        <p className="muted">
          Operators create organisations with <code>lectr org create NAME</code> or{" "}
          <code>POST /api/orgs</code>.
        </p>
      </EmptyState>
    </AppShell>
  );
}

export function NotFoundPage() {
  return (
    <main className="center-page">
      <div className="card narrow">
        <h1>Page not found</h1>
        <p>There is nothing at this address.</p>
        <p>
          <Link to="/">Go home</Link>
        </p>
      </div>
    </main>
  );
}
