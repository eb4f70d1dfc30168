import { describe, expect, it, vi } from "vitest";
import { setCredentials, setUnauthorizedHandler } from "../auth/credentials";
import { apiError, mockApi, reply } from "../test/mockApi";
import { ApiError, apiFetch } from "./client";

describe("apiFetch", () => {
  it("sends the bearer token and the query, skipping empty values", async () => {
    const api = mockApi({ "GET /api/orgs/o1/requests": { requests: [], next_cursor: null } });
    setCredentials({ kind: "oidc", accessToken: "tok" });
    await apiFetch("/api/orgs/o1/requests", { query: { status: "5xx", feature: "", model: null, limit: 50 } });
    const call = api.calls[0]!;
    expect(call.headers.authorization).toBe("Bearer tok");
    expect(call.query.toString()).toBe("status=5xx&limit=50");
  });

  it("adds the CSRF token on writes of an admin session only", async () => {
    const api = mockApi({ "GET /api/me": {}, "POST /api/orgs/o1/anomalies/a/dismiss": {} });
    setCredentials({ kind: "admin", csrfToken: "c1" });
    await apiFetch("/api/me");
    await apiFetch("/api/orgs/o1/anomalies/a/dismiss", { method: "POST", body: {} });
    expect(api.calls[0]!.headers["x-csrf-token"]).toBeUndefined();
    expect(api.calls[1]!.headers["x-csrf-token"]).toBe("c1");
    expect(api.calls[1]!.headers.authorization).toBeUndefined();
  });

  it("throws ApiError with the API's code, message and field", async () => {
    mockApi({ "POST /api/orgs/o1/rules": apiError(400, "invalid_request", "name is too long", "name") });
    const error = await apiFetch("/api/orgs/o1/rules", { method: "POST", body: {} }).catch((e) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 400, code: "invalid_request", message: "name is too long", field: "name" });
  });

  it("returns undefined for 204 and maps network failures", async () => {
    mockApi({ "DELETE /api/session": reply(204) });
    await expect(apiFetch("/api/session", { method: "DELETE" })).resolves.toBeUndefined();
    vi.stubGlobal("fetch", vi.fn(async () => Promise.reject(new TypeError("offline"))));
    await expect(apiFetch("/api/me")).rejects.toMatchObject({ status: 0, code: "network" });
  });

  it("signs out on 401", async () => {
    mockApi({ "GET /api/me": apiError(401, "unauthorized", "token expired") });
    setCredentials({ kind: "oidc", accessToken: "tok" });
    const handler = vi.fn();
    const off = setUnauthorizedHandler(handler);
    await expect(apiFetch("/api/me")).rejects.toMatchObject({ status: 401 });
    off();
    expect(handler).toHaveBeenCalledTimes(1);
  });
});
