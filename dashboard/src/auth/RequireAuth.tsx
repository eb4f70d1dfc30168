import type { ReactNode } from "react";
import { Navigate, useLocation } from "react-router-dom";
import { Loading } from "../components";
import { useSession } from "./SessionContext";

/** Signed out → /signin?next=<where the user was going>. */
export function RequireAuth({ children }: { children: ReactNode }) {
  const session = useSession();
  const location = useLocation();
  if (session.status === "loading") return <Loading label="Checking your session…" />;
  if (session.status === "signedOut") {
    // Not the hash: it can hold a secret (an invite token) that must not reach a URL query.
    const next = location.pathname + location.search;
    return <Navigate to={`/signin?next=${encodeURIComponent(next)}`} replace />;
  }
  return <>{children}</>;
}
