// The current session's credentials, read by apiFetch on every call. Kept in memory only:
// the OIDC user lives in sessionStorage (oidc-client-ts), the admin session's cookie is
// HttpOnly and its CSRF token is recovered with GET /api/session after a reload.

export type Credentials =
  | { kind: "oidc"; accessToken: string }
  | { kind: "admin"; csrfToken: string };

let current: Credentials | null = null;
let onUnauthorized: (() => void) | null = null;

export function getCredentials(): Credentials | null {
  return current;
}

export function setCredentials(credentials: Credentials | null): void {
  current = credentials;
}

/** The session provider registers what a 401 does (sign out); returns the unregister. */
export function setUnauthorizedHandler(handler: (() => void) | null): () => void {
  onUnauthorized = handler;
  return () => {
    if (onUnauthorized === handler) onUnauthorized = null;
  };
}

export function notifyUnauthorized(): void {
  onUnauthorized?.();
}
