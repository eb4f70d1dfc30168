// The one way the dashboard talks to the management API: JSON in, JSON out, errors as
// ApiError, credentials added from the current session (src/auth/credentials.ts).
import { getCredentials, notifyUnauthorized } from "../auth/credentials";

export class ApiError extends Error {
  status: number;
  code: string;
  field: string | null;
  /** Seconds from a 429's Retry-After header, when it gave one. */
  retryAfter: number | null;

  constructor(
    status: number,
    code: string,
    message: string,
    field: string | null = null,
    retryAfter: number | null = null,
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
  }
}

export type QueryValue = string | number | boolean | null | undefined;

export interface ApiFetchOptions {
  method?: "GET" | "POST" | "PATCH" | "PUT" | "DELETE";
  /** JSON-encoded when given. */
  body?: unknown;
  /** undefined, null and "" are skipped. */
  query?: Record<string, QueryValue>;
  signal?: AbortSignal;
}

/** `path` plus the query string of the non-empty values of `query`. */
export function withQuery(path: string, query?: Record<string, QueryValue>): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    params.append(key, String(value));
  }
  const text = params.toString();
  if (!text) return path;
  return path + (path.includes("?") ? "&" : "?") + text;
}

const WRITE_METHODS = new Set(["POST", "PATCH", "PUT", "DELETE"]);

function statusCode(status: number): string {
  switch (status) {
    case 400:
      return "invalid_request";
    case 401:
      return "unauthorized";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 409:
      return "conflict";
    case 429:
      return "rate_limited";
    case 503:
      return "unavailable";
    default:
      return "http_error";
  }
}

function defaultMessage(status: number): string {
  switch (status) {
    case 401:
      return "You are not signed in, or your session has expired.";
    case 403:
      return "Your role does not allow this.";
    case 404:
      return "Not found.";
    case 429:
      return "Too many attempts: wait a minute and try again.";
    case 503:
      return "The service is unavailable: try again shortly.";
    default:
      return `The server answered ${status}.`;
  }
}

function parseRetryAfter(value: string | null): number | null {
  if (!value) return null;
  const seconds = Number(value);
  return Number.isFinite(seconds) ? seconds : null;
}

async function errorFrom(response: Response): Promise<ApiError> {
  let code = statusCode(response.status);
  let message = defaultMessage(response.status);
  let field: string | null = null;
  try {
    const body: unknown = await response.json();
    const detail =
      body && typeof body === "object" && "error" in body
        ? (body as { error: unknown }).error
        : null;
    if (detail && typeof detail === "object") {
      const d = detail as { code?: unknown; message?: unknown; field?: unknown };
      if (typeof d.code === "string") code = d.code;
      if (typeof d.message === "string" && d.message) message = d.message;
      if (typeof d.field === "string") field = d.field;
    }
  } catch {
    // not JSON: keep the defaults
  }
  return new ApiError(
    response.status,
    code,
    message,
    field,
    parseRetryAfter(response.headers.get("Retry-After")),
  );
}

/** Internal: apiFetch with the choice of whether a 401 signs the user out. */
export async function request<T>(
  path: string,
  options: ApiFetchOptions = {},
  { signOutOn401 = true }: { signOutOn401?: boolean } = {},
): Promise<T> {
  const method = options.method ?? "GET";
  const headers: Record<string, string> = { Accept: "application/json" };
  const credentials = getCredentials();
  if (credentials?.kind === "oidc") {
    headers.Authorization = `Bearer ${credentials.accessToken}`;
  } else if (credentials?.kind === "admin" && WRITE_METHODS.has(method)) {
    headers["X-CSRF-Token"] = credentials.csrfToken;
  }
  let body: string | undefined;
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  let response: Response;
  try {
    response = await fetch(withQuery(path, options.query), {
      method,
      headers,
      body,
      credentials: "same-origin",
      signal: options.signal,
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw new ApiError(0, "network", "Could not reach the Lectr API: check your connection.");
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401 && signOutOn401 && credentials !== null) {
      notifyUnauthorized();
    }
    throw error;
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  if (!text) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(response.status, "invalid_response", "The server sent a response that is not JSON.");
  }
}

/**
 * Calls the management API. 204 → undefined; non-2xx → throws ApiError (network failure →
 * ApiError status 0 code "network"). Adds the session's credentials: an OIDC access token
 * as Bearer, or for an admin-secret session the cookie plus X-CSRF-Token on writes.
 * A 401 signs the user out (back to /signin).
 */
export async function apiFetch<T>(path: string, options?: ApiFetchOptions): Promise<T> {
  return request<T>(path, options);
}

/** The message to show for any thrown value. */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error && error.message) return error.message;
  return "Something went wrong.";
}
