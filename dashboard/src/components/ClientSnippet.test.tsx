import { screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { makeKey } from "../test/fixtures";
import { mockApi } from "../test/mockApi";
import { renderWithProviders, testConfig } from "../test/render";
import { ClientSnippet, proxyUrl } from "./ClientSnippet";

describe("ClientSnippet", () => {
  it("fills in the configured proxy URL and the first active key's prefix", async () => {
    mockApi({ "GET /api/orgs/o1/keys": { keys: [makeKey({ display_prefix: "lc_key_Zz9" })] } });
    renderWithProviders(<ClientSnippet orgId="o1" />, {
      session: { config: { ...testConfig, proxy_url: "https://proxy.example.com/" } },
    });
    expect(await screen.findByText(/base_url="https:\/\/proxy.example.com\/v1"/)).toBeInTheDocument();
    expect(screen.getByText(/base_url="https:\/\/proxy.example.com",/)).toBeInTheDocument();
    expect((await screen.findAllByText(/lc_key_Zz9/)).length).toBeGreaterThan(1);
  });

  it("says when the organisation has no active key", async () => {
    mockApi({ "GET /api/orgs/o1/keys": { keys: [makeKey({ revoked_at: "2026-01-01T00:00:00Z" })] } });
    renderWithProviders(<ClientSnippet orgId="o1" />);
    expect(await screen.findByText(/has no active key/)).toBeInTheDocument();
  });

  it("falls back to this host on port 8080", () => {
    expect(proxyUrl(null)).toBe("http://localhost:8080");
    expect(proxyUrl("http://10.0.0.5:8080")).toBe("http://10.0.0.5:8080");
  });
});
