import { createContext, useContext } from "react";
import type { PublicConfig } from "../api/types";

export type SessionStatus = "loading" | "signedIn" | "signedOut";

export interface Session {
  status: SessionStatus;
  /** How the user signed in: an OIDC access token, or the admin secret (operator). */
  kind: "oidc" | "admin" | null;
  /** GET /api/config; null only in tests that do not need it. */
  config: PublicConfig | null;
  /** POST /api/session; throws ApiError (401 bad secret, 429 too many tries). */
  signInWithSecret(secret: string): Promise<void>;
  /** Starts the OIDC redirect; the user comes back to `next` after /auth/callback. */
  signInWithSso(next: string): Promise<void>;
  signOut(): Promise<void>;
  /** An OIDC error to show on the sign-in page (a failed callback, say). */
  oidcError: string | null;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession must be used inside <SessionProvider>");
  return session;
}
