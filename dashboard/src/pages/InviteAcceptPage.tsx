// /invites/accept#token=lc_inv_…: the link of an invite email. The token is read from
// the hash (never sent to a server in a URL), kept in sessionStorage across a sign-in,
// removed from the address bar, then POSTed to /api/invites/accept.
import { useEffect, useRef, useState, type ReactNode } from "react";
import { Link, useLocation, useNavigate } from "react-router-dom";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { ApiError, apiFetch, errorMessage } from "../api/client";
import type { Schemas } from "../api/types";
import { useSession } from "../auth/SessionContext";
import { ME_QUERY_KEY } from "../auth/useMe";
import { Loading } from "../components";

/** Where the token waits while the user signs in (this tab only). */
export const INVITE_TOKEN_KEY = "lectr.invite_token";

/** The token of a `#token=…` hash, or null. */
export function tokenFromHash(hash: string): string | null {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const token = params.get("token")?.trim();
  return token ? token : null;
}

function storedToken(): string | null {
  try {
    return window.sessionStorage.getItem(INVITE_TOKEN_KEY);
  } catch {
    return null;
  }
}

function storeToken(token: string | null): void {
  try {
    if (token) window.sessionStorage.setItem(INVITE_TOKEN_KEY, token);
    else window.sessionStorage.removeItem(INVITE_TOKEN_KEY);
  } catch {
    // storage refused (private mode): the token only lives in this page's state
  }
}

function Frame(props: { children: ReactNode }) {
  return (
    <main className="center-page">
      <div className="card narrow stack">
        <h1>Accept invite</h1>
        {props.children}
      </div>
    </main>
  );
}

/** What a failed accept means, in words (the API's message included). */
/** The API's message, ended with a full stop so more can follow it. */
function sentence(message: string): string {
  const text = message.trim();
  return !text || /[.!?]$/.test(text) ? text : `${text}.`;
}

function failure(error: unknown): { title: string; text: string; retry: boolean } {
  const message = sentence(errorMessage(error));
  if (error instanceof ApiError) {
    if (error.status === 404) {
      return {
        title: "This invite is not valid",
        text: `${message} Ask an admin of the organisation for a new invite.`,
        retry: false,
      };
    }
    if (error.status === 409) {
      return { title: "This invite cannot be used", text: message, retry: false };
    }
    if (error.status === 403) {
      return {
        title: "Sign in as the invited user",
        text: `${message} Operators (admin-secret sessions) cannot accept invites.`,
        retry: false,
      };
    }
  }
  return { title: "The invite was not accepted", text: message, retry: true };
}

export default function InviteAcceptPage() {
  const session = useSession();
  const location = useLocation();
  const navigate = useNavigate();
  const queryClient = useQueryClient();

  // The token: from the hash on arrival (then stored and removed from the URL), else the
  // one stored before a sign-in.
  const [token] = useState<string | null>(() => {
    const fromHash = tokenFromHash(location.hash);
    if (fromHash) storeToken(fromHash);
    return fromHash ?? storedToken();
  });

  useEffect(() => {
    if (location.hash) {
      navigate({ pathname: location.pathname, search: location.search }, { replace: true });
    }
  }, [location.hash, location.pathname, location.search, navigate]);

  const accept = useMutation({
    mutationFn: (value: string) =>
      apiFetch<Schemas["InviteAccepted"]>("/api/invites/accept", {
        method: "POST",
        body: { token: value },
      }),
    onSuccess: () => {
      storeToken(null);
      void queryClient.invalidateQueries({ queryKey: ME_QUERY_KEY });
    },
    onError: (error) => {
      // A spent, unknown or expired token will not work later either.
      if (error instanceof ApiError && (error.status === 404 || error.status === 409)) storeToken(null);
    },
  });

  // Once signed in, accept once (a ref, so a re-render or StrictMode never sends it twice).
  const sent = useRef(false);
  useEffect(() => {
    if (session.status !== "signedIn" || !token || sent.current) return;
    sent.current = true;
    accept.mutate(token);
  }, [session.status, token, accept]);

  // Signed out: sign in first, then come back here (the token waits in sessionStorage).
  useEffect(() => {
    if (session.status === "signedOut" && token) {
      navigate(`/signin?next=${encodeURIComponent("/invites/accept")}`, { replace: true });
    }
  }, [session.status, token, navigate]);

  if (!token) {
    return (
      <Frame>
        <div role="alert" className="error-state">
          <strong>No invite token</strong>
          <p>
            This address carries no invite. Open the link from your invite email again (the
            whole link, including the part after <code>#</code>).
          </p>
        </div>
        <p>
          <Link to="/">Go to the dashboard</Link>
        </p>
      </Frame>
    );
  }

  if (session.status === "loading") {
    return (
      <Frame>
        <Loading label="Checking your session…" />
      </Frame>
    );
  }

  if (session.status === "signedOut") {
    return (
      <Frame>
        <p>Sign in to accept the invite…</p>
      </Frame>
    );
  }

  if (accept.isSuccess) {
    const { org_id, org_name, member } = accept.data;
    return (
      <Frame>
        <p role="status">
          You joined <strong>{org_name}</strong> as <strong>{member.role}</strong>.
        </p>
        <p>
          <Link className="button button-primary" to={`/orgs/${org_id}`}>
            Open {org_name}
          </Link>
        </p>
      </Frame>
    );
  }

  if (accept.isError) {
    const { title, text, retry } = failure(accept.error);
    return (
      <Frame>
        <div role="alert" className="error-state">
          <strong>{title}</strong>
          <p>{text}</p>
          {retry && (
            <button type="button" className="button" onClick={() => accept.mutate(token)}>
              Retry
            </button>
          )}
        </div>
        <p>
          <Link to="/">Go to the dashboard</Link>
        </p>
      </Frame>
    );
  }

  return (
    <Frame>
      <Loading label="Accepting the invite…" />
    </Frame>
  );
}
