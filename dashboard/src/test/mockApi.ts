// A fetch stub for component tests: routes "METHOD /path" (optionally with the exact
// query, "GET /api/orgs/o1/summary?period=7d", tried before the bare path) to a body
// (200 JSON), a reply(status, body) or a function of the request. A call no route matches
// fails the test (checked after each test in src/test/setup.ts).
import { vi } from "vitest";

const REPLY = Symbol("mockReply");

export interface MockReply {
  [REPLY]: true;
  status: number;
  body: unknown;
  headers: Record<string, string>;
}

/** A response with this status and JSON body (undefined → no body, e.g. 204). */
export function reply(status: number, body?: unknown, headers: Record<string, string> = {}): MockReply {
  return { [REPLY]: true, status, body, headers };
}

/** An API error in the API's shape: {"error": {type, code, message, field}}. */
export function apiError(
  status: number,
  code: string,
  message: string,
  field: string | null = null,
  headers: Record<string, string> = {},
): MockReply {
  return reply(status, { error: { type: "invalid_request_error", code, message, field } }, headers);
}

/** A reply that never settles: the page stays loading. */
export function pending(): Promise<never> {
  return new Promise(() => undefined);
}

export interface MockRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Record<string, string>;
  body: unknown;
}

/** A function of the request (returning a body, a reply or a promise of either), a reply,
 * or a body (answered 200 as JSON). */
export type MockHandler =
  | ((request: MockRequest) => unknown)
  | MockReply
  | object
  | string
  | number
  | boolean
  | null;

export interface MockApi {
  /** Every call made, in order. */
  calls: MockRequest[];
  /** The calls to one "METHOD /path" (query ignored). */
  callsTo(route: string): MockRequest[];
  /** Adds or replaces routes (e.g. to answer differently on retry). */
  set(routes: Record<string, MockHandler>): void;
  set(routes: Record<string, unknown>): void;
  fetch: ReturnType<typeof vi.fn>;
}

const unmatched: string[] = [];

/** Called by src/test/setup.ts after each test. */
export function takeUnmatchedCalls(): string[] {
  return unmatched.splice(0, unmatched.length);
}

function isReply(value: unknown): value is MockReply {
  return typeof value === "object" && value !== null && REPLY in value;
}

function headersOf(init: RequestInit | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  const h = init?.headers;
  if (!h) return out;
  if (h instanceof Headers) h.forEach((v, k) => (out[k.toLowerCase()] = v));
  else if (Array.isArray(h)) for (const [k, v] of h) out[k.toLowerCase()] = v;
  else for (const [k, v] of Object.entries(h)) out[k.toLowerCase()] = String(v);
  return out;
}

export function mockApi(initial?: Record<string, MockHandler>): MockApi;
export function mockApi(initial?: Record<string, unknown>): MockApi;
export function mockApi(initial: Record<string, unknown> = {}): MockApi {
  const routes = new Map<string, unknown>(Object.entries(initial));
  const calls: MockRequest[] = [];
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const raw = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const url = new URL(raw, "http://localhost");
    const method = (init?.method ?? "GET").toUpperCase();
    let body: unknown = undefined;
    if (typeof init?.body === "string") {
      try {
        body = JSON.parse(init.body);
      } catch {
        body = init.body;
      }
    }
    const req: MockRequest = {
      method,
      path: url.pathname,
      query: url.searchParams,
      headers: headersOf(init),
      body,
    };
    calls.push(req);
    const withQuery = `${method} ${url.pathname}${url.search}`;
    const bare = `${method} ${url.pathname}`;
    const key = routes.has(withQuery) ? withQuery : routes.has(bare) ? bare : null;
    if (key === null) {
      unmatched.push(withQuery);
      throw new TypeError(`mockApi: no route for ${withQuery}`);
    }
    const handler = routes.get(key);
    let result = typeof handler === "function" ? await (handler as (r: MockRequest) => unknown)(req) : handler;
    result = await result;
    const out = isReply(result) ? result : reply(200, result);
    const hasBody = out.body !== undefined && out.status !== 204;
    return new Response(hasBody ? JSON.stringify(out.body) : null, {
      status: out.status,
      headers: { ...(hasBody ? { "Content-Type": "application/json" } : {}), ...out.headers },
    });
  });
  vi.stubGlobal("fetch", fetchMock);
  return {
    calls,
    callsTo: (route) => {
      const [method, path] = route.split(" ");
      return calls.filter((c) => c.method === method && c.path === path);
    },
    set: (more: Record<string, unknown>) => {
      for (const [k, v] of Object.entries(more)) routes.set(k, v);
    },
    fetch: fetchMock,
  };
}
