// Who is signed in, and how: an OIDC user (react-oidc-context, Bearer access token) or
// an admin-secret session (HttpOnly cookie + CSRF token held in memory, recovered with
// GET /api/session on load). Feeds src/auth/credentials.ts, which apiFetch reads.
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { UserManager, WebStorageStateStore } from "oidc-client-ts";
import { useCallback, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { AuthProvider, useAuth } from "react-oidc-context";
import { useNavigate } from "react-router-dom";
import { request } from "../api/client";
import type { AdminSession, OidcConfig, PublicConfig, SessionState } from "../api/types";
import { ErrorState, Loading } from "../components";
import { setCredentials, setUnauthorizedHandler } from "./credentials";
import { safeNext } from "./safeNext";
import { SessionContext, type Session } from "./SessionContext";

function makeUserManager(oidc: OidcConfig): UserManager {
  const origin = window.location.origin;
  return new UserManager({
    authority: oidc.issuer,
    client_id: oidc.client_id,
    redirect_uri: `${origin}/auth/callback`,
    post_logout_redirect_uri: `${origin}/signin`,
    response_type: "code",
    scope: "openid email profile",
    extraQueryParams: oidc.audience ? { audience: oidc.audience } : undefined,
    // The library default, said out loud: never localStorage.
    userStore: new WebStorageStateStore({ store: window.sessionStorage }),
    // No hidden-iframe renewal (it needs a silent redirect page and third-party cookies at
    // the issuer): an expired token gets a 401, which signs out; signing in again is one
    // click while the issuer's own session lasts.
    automaticSilentRenew: false,
  });
}

export interface OidcBridge {
  isLoading: boolean;
  accessToken: string | null;
  error: string | null;
  signIn(next: string): Promise<void>;
  signOut(): Promise<void>;
}

/** Loads /api/config, then mounts the OIDC provider when the API has one. */
export function AuthRoot({ children }: { children: ReactNode }) {
  const config = useQuery({
    queryKey: ["config"],
    queryFn: () => request<PublicConfig>("/api/config", {}, { signOutOn401: false }),
    staleTime: Infinity,
  });
  if (config.isPending) return <Loading label="Loading Lectr…" />;
  if (config.isError) {
    return (
      <main className="center-page">
        <ErrorState error={config.error} onRetry={() => void config.refetch()} />
      </main>
    );
  }
  if (config.data.oidc) {
    return (
      <OidcRoot config={config.data} oidc={config.data.oidc}>
        {children}
      </OidcRoot>
    );
  }
  return (
    <SessionProvider config={config.data} oidc={null}>
      {children}
    </SessionProvider>
  );
}

function OidcRoot({
  config,
  oidc,
  children,
}: {
  config: PublicConfig;
  oidc: OidcConfig;
  children: ReactNode;
}) {
  const navigate = useNavigate();
  const userManager = useMemo(() => makeUserManager(oidc), [oidc]);
  const onSigninCallback = useCallback(
    (user: { state?: unknown } | undefined) => {
      const state = user?.state as { next?: string } | undefined;
      navigate(safeNext(state?.next), { replace: true });
    },
    [navigate],
  );
  return (
    <AuthProvider userManager={userManager} onSigninCallback={onSigninCallback}>
      <OidcBridgeProvider config={config} userManager={userManager}>
        {children}
      </OidcBridgeProvider>
    </AuthProvider>
  );
}

function OidcBridgeProvider({
  config,
  userManager,
  children,
}: {
  config: PublicConfig;
  userManager: UserManager;
  children: ReactNode;
}) {
  const auth = useAuth();
  const expired = auth.user?.expired ?? false;
  const bridge: OidcBridge = {
    isLoading: auth.isLoading,
    accessToken: auth.isAuthenticated && auth.user && !expired ? auth.user.access_token : null,
    error: auth.error ? auth.error.message : null,
    signIn: (next) => auth.signinRedirect({ state: { next: safeNext(next) } }),
    signOut: async () => {
      let endSession: string | undefined;
      try {
        endSession = await userManager.metadataService.getEndSessionEndpoint();
      } catch {
        endSession = undefined;
      }
      if (endSession) {
        try {
          await auth.signoutRedirect({ id_token_hint: auth.user?.id_token });
          return;
        } catch {
          // fall through: clear locally
        }
      }
      await auth.removeUser();
    },
  };
  return (
    <SessionProvider config={config} oidc={bridge}>
      {children}
    </SessionProvider>
  );
}

type AdminState =
  | { status: "unknown" }
  | { status: "none" }
  | { status: "active"; csrfToken: string };

export function SessionProvider({
  config,
  oidc,
  children,
}: {
  config: PublicConfig;
  oidc: OidcBridge | null;
  children: ReactNode;
}) {
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const [admin, setAdmin] = useState<AdminState>(
    config.operator_sign_in ? { status: "unknown" } : { status: "none" },
  );
  const oidcToken = oidc?.accessToken ?? null;
  const oidcRef = useRef(oidc);
  oidcRef.current = oidc;

  // An admin session survives a reload through its cookie: ask whether one exists.
  useEffect(() => {
    if (!config.operator_sign_in || oidcToken) {
      setAdmin((a) => (a.status === "unknown" ? { status: "none" } : a));
      return;
    }
    let live = true;
    request<SessionState>("/api/session", {}, { signOutOn401: false })
      .then((s) => {
        if (!live) return;
        setAdmin(s.session ? { status: "active", csrfToken: s.session.csrf_token } : { status: "none" });
      })
      .catch(() => {
        if (live) setAdmin({ status: "none" });
      });
    return () => {
      live = false;
    };
    // Once per load: later sign-ins set the session themselves.
  }, [config.operator_sign_in]);

  const oidcLoading = oidc?.isLoading ?? false;
  let status: Session["status"];
  let kind: Session["kind"] = null;
  if (oidcToken) {
    status = "signedIn";
    kind = "oidc";
  } else if (admin.status === "active") {
    status = "signedIn";
    kind = "admin";
  } else if (oidcLoading || admin.status === "unknown") {
    status = "loading";
  } else {
    status = "signedOut";
  }

  // apiFetch reads these; set during render so children's first queries have them.
  if (kind === "oidc" && oidcToken) setCredentials({ kind: "oidc", accessToken: oidcToken });
  else if (kind === "admin" && admin.status === "active")
    setCredentials({ kind: "admin", csrfToken: admin.csrfToken });
  else if (status === "signedOut") setCredentials(null);

  const clearLocal = useCallback(() => {
    setCredentials(null);
    queryClient.removeQueries({ predicate: (q) => q.queryKey[0] !== "config" });
  }, [queryClient]);

  // A 401 from any call: the session is gone, sign out locally.
  useEffect(
    () =>
      setUnauthorizedHandler(() => {
        setAdmin({ status: "none" });
        clearLocal();
        const current = oidcRef.current;
        if (current?.accessToken) void current.signOut().catch(() => undefined);
      }),
    [clearLocal],
  );

  const signInWithSecret = useCallback(
    async (secret: string) => {
      const s = await request<AdminSession>(
        "/api/session",
        { method: "POST", body: { secret } },
        { signOutOn401: false },
      );
      queryClient.removeQueries({ predicate: (q) => q.queryKey[0] !== "config" });
      setCredentials({ kind: "admin", csrfToken: s.csrf_token });
      setAdmin({ status: "active", csrfToken: s.csrf_token });
    },
    [queryClient],
  );

  const signInWithSso = useCallback(async (next: string) => {
    const current = oidcRef.current;
    if (!current) throw new Error("SSO sign-in is not configured.");
    await current.signIn(next);
  }, []);

  const signOut = useCallback(async () => {
    if (kind === "admin") {
      try {
        await request<void>("/api/session", { method: "DELETE" }, { signOutOn401: false });
      } catch {
        // Signed out locally all the same: a session the server no longer knows is over,
        // and otherwise the cookie expires on its own.
      }
      setAdmin({ status: "none" });
      clearLocal();
      navigate("/signin", { replace: true });
      return;
    }
    clearLocal();
    if (oidcRef.current) await oidcRef.current.signOut();
    navigate("/signin", { replace: true });
  }, [kind, clearLocal, navigate]);

  const session = useMemo<Session>(
    () => ({
      status,
      kind,
      config,
      signInWithSecret,
      signInWithSso,
      signOut,
      oidcError: oidc?.error ?? null,
    }),
    [status, kind, config, signInWithSecret, signInWithSso, signOut, oidc?.error],
  );
  return <SessionContext.Provider value={session}>{children}</SessionContext.Provider>;
}
