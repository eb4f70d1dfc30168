import { useEffect, useRef } from "react";
import { useAuth } from "react-oidc-context";
import { Link, Navigate, useLocation, useNavigate } from "react-router-dom";
import { safeNext } from "../auth/safeNext";
import { useSession } from "../auth/SessionContext";
import { Loading } from "../components";

/** The router's location carries an authorization response (`code`/`error` + `state`). */
function hasAuthResponse(search: string, hash: string): boolean {
  for (const raw of [search, hash.replace(/^#/, "?")]) {
    const params = new URLSearchParams(raw);
    if ((params.get("code") || params.get("error")) && params.get("state")) return true;
  }
  return false;
}

/** Where the sign-in started from: the `next` saved in the OIDC request's state. */
export function nextFromState(state: unknown): string {
  const next =
    state && typeof state === "object" && "next" in state
      ? (state as { next?: unknown }).next
      : undefined;
  return safeNext(typeof next === "string" ? next : null);
}

function OidcCallback() {
  const auth = useAuth();
  const location = useLocation();
  const navigate = useNavigate();
  const navigated = useRef(false);
  // While this URL still carries the authorization response, the provider is completing
  // the sign-in and its onSigninCallback navigates to the saved `next` (from the OIDC
  // state). The user is marked loaded *before* that callback runs, and the router applies
  // navigations in a transition, so this page can render "authenticated" while still on
  // /auth/callback?code=…: it must not navigate anywhere itself then (that was the race
  // that sent users to "/" after they had reached their page).
  const pending = hasAuthResponse(location.search, location.hash);
  const target =
    !auth.error && !auth.isLoading && auth.isAuthenticated && !pending
      ? nextFromState(auth.user?.state)
      : null;
  useEffect(() => {
    // Opened without a pending sign-in while signed in: go (once) to the saved `next`.
    if (target === null || navigated.current) return;
    navigated.current = true;
    navigate(target, { replace: true });
  }, [target, navigate]);

  if (auth.error) {
    return (
      <main className="center-page">
        <div className="card narrow stack">
          <h1>Sign in</h1>
          <div className="error-state" role="alert">
            <strong>Single sign-on failed</strong>
            <p>{auth.error.message}</p>
          </div>
          <Link to="/signin">Back to sign-in</Link>
        </div>
      </main>
    );
  }
  if (!pending && !auth.isLoading && !auth.isAuthenticated && !auth.activeNavigator) {
    return <Navigate to="/signin" replace />;
  }
  return <Loading label="Signing you in…" />;
}

/** /auth/callback: react-oidc-context completes the sign-in here. */
export default function AuthCallbackPage() {
  const session = useSession();
  if (!session.config?.oidc) return <Navigate to="/signin" replace />;
  return <OidcCallback />;
}
