import { useState, type FormEvent } from "react";
import { Navigate, useSearchParams } from "react-router-dom";
import { ApiError, errorMessage } from "../api/client";
import { safeNext } from "../auth/safeNext";
import { useSession } from "../auth/SessionContext";
import { Loading } from "../components";

function signInError(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 401) return "That admin secret is not right.";
    if (error.status === 429) {
      const wait = error.retryAfter ? ` in ${Math.ceil(error.retryAfter)} seconds` : " in a minute";
      return `Too many sign-in attempts: try again${wait}.`;
    }
    if (error.status === 403) return error.message || "Operator sign-in is turned off.";
  }
  return errorMessage(error);
}

export default function SignInPage() {
  const session = useSession();
  const [params] = useSearchParams();
  const next = safeNext(params.get("next"));
  const [secret, setSecret] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState<"secret" | "sso" | null>(null);

  if (session.status === "loading") return <Loading label="Checking your session…" />;
  if (session.status === "signedIn") return <Navigate to={next} replace />;

  const config = session.config;
  const oidc = config?.oidc ?? null;
  const operator = config?.operator_sign_in ?? false;

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!secret) {
      setError("Enter the admin secret.");
      return;
    }
    setBusy("secret");
    setError(null);
    try {
      await session.signInWithSecret(secret);
      setSecret("");
    } catch (e) {
      setError(signInError(e));
    } finally {
      setBusy(null);
    }
  }

  async function sso() {
    setBusy("sso");
    setError(null);
    try {
      await session.signInWithSso(next);
    } catch (e) {
      setError(errorMessage(e));
      setBusy(null);
    }
  }

  return (
    <main className="center-page">
      <div className="signin">
        <div className="brand">
          <span className="brand-mark" aria-hidden="true">
            L
          </span>
          <span className="brand-name">Lectr</span>
        </div>
        <div className="card">
          <h1>Sign in</h1>
          {session.oidcError && (
            <div className="error-state" role="alert">
              <strong>Single sign-on failed</strong>
              <p>{session.oidcError}</p>
            </div>
          )}
          {error && (
            <div className="error-state" role="alert">
              <p>{error}</p>
            </div>
          )}
          {oidc && (
            <button
              type="button"
              className="button button-primary button-block"
              onClick={() => void sso()}
              disabled={busy !== null}
            >
              {busy === "sso" ? "Redirecting…" : "Sign in with SSO"}
            </button>
          )}
          {oidc && operator && <div className="divider">or, as an operator</div>}
          {operator && (
            <form className="stack" onSubmit={(e) => void submit(e)} noValidate>
              <div className="field">
                <label htmlFor="admin-secret">Admin secret</label>
                <input
                  id="admin-secret"
                  type="password"
                  autoComplete="current-password"
                  value={secret}
                  onChange={(e) => setSecret(e.target.value)}
                  aria-invalid={error ? true : undefined}
                />
              </div>
              <button
                type="submit"
                className={`button button-block ${oidc ? "" : "button-primary"}`}
                disabled={busy !== null}
              >
                {busy === "secret" ? "Signing in…" : "Sign in"}
              </button>
            </form>
          )}
          {!oidc && !operator && (
            <p className="muted">
              No sign-in method is configured. Set <code>LECTR_OIDC_ISSUER</code>,{" "}
              <code>LECTR_OIDC_CLIENT_ID</code> and <code>LECTR_OIDC_AUDIENCE</code> for single
              sign-on, or enable operator sign-in with <code>LECTR_ADMIN_SECRET</code>.
            </p>
          )}
        </div>
        {config?.version && <p className="muted" style={{ textAlign: "center" }}>Lectr {config.version}</p>}
      </div>
    </main>
  );
}
