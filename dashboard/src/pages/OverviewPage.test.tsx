import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { makeAnomaly, makeEmptySummary, makeKey, makeSummary } from "../test/fixtures";
import { apiError, mockApi, pending } from "../test/mockApi";
import { currentLocation, renderWithProviders } from "../test/render";
import OverviewPage from "./OverviewPage";

const SUMMARY = "GET /api/orgs/o1/summary";
const ANOMALIES = "GET /api/orgs/o1/anomalies";

describe("OverviewPage", () => {
  it("shows a loading state while the summary loads", () => {
    mockApi({ [SUMMARY]: () => pending(), [ANOMALIES]: { anomalies: [] } });
    renderWithProviders(<OverviewPage />);
    expect(screen.getByRole("heading", { level: 1, name: "Overview" })).toBeInTheDocument();
    expect(screen.getByRole("status")).toHaveTextContent("Loading");
  });

  it("shows the API's error and retries", async () => {
    const api = mockApi({
      [SUMMARY]: apiError(503, "database_unavailable", "The database is unavailable"),
      [ANOMALIES]: { anomalies: [] },
    });
    const { user } = renderWithProviders(<OverviewPage />);
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("The database is unavailable");
    api.set({ [SUMMARY]: makeSummary() });
    await user.click(within(alert).getByRole("button", { name: "Retry" }));
    expect(await screen.findByRole("region", { name: "Requests" })).toHaveTextContent("14,400");
    expect(api.callsTo(SUMMARY)).toHaveLength(2);
  });

  it("shows the figures, tables and folded entries of a summary", async () => {
    mockApi({ [SUMMARY]: makeSummary(), [ANOMALIES]: { anomalies: [] } });
    renderWithProviders(<OverviewPage />);
    const requests = await screen.findByRole("region", { name: "Requests" });
    expect(requests).toHaveTextContent("14,400");
    expect(requests).toHaveTextContent(/per minute/);
    expect(screen.getByRole("region", { name: "Cost" })).toHaveTextContent("$48.50");
    expect(screen.getByRole("region", { name: "Cost" })).toHaveTextContent(/per hour/);
    expect(screen.getByRole("region", { name: "Error rate" })).toHaveTextContent("1.00 %");
    expect(screen.getByRole("region", { name: "Error rate" })).toHaveTextContent("144 failures");
    const p95 = screen.getByRole("region", { name: "p95 latency" });
    expect(p95).toHaveTextContent("1.24 s");
    expect(p95).toHaveTextContent("within target");
    expect(screen.getByRole("region", { name: "Mean TTFB" })).toHaveTextContent("212 ms");
    expect(screen.getByRole("region", { name: "Tokens" })).not.toHaveTextContent("estimate");

    const providers = screen.getByRole("region", { name: "Providers" });
    expect(within(providers).getByRole("columnheader", { name: "p95 latency" })).toBeInTheDocument();
    const openai = within(providers).getByRole("row", { name: /openai/ });
    expect(openai).toHaveTextContent("9,400");
    expect(openai).toHaveTextContent("99.00 %");
    expect(openai).toHaveTextContent("$40.50");

    const models = screen.getByRole("region", { name: "Top models" });
    expect(within(models).getByText("gpt-4o")).toBeInTheDocument();
    expect(within(models).getByText("7 others")).toBeInTheDocument();
    expect(screen.getByRole("region", { name: "Top features" })).toHaveTextContent("chat");
    expect(screen.getByRole("region", { name: "Task types" })).toHaveTextContent("classification");

    // Nothing dropped, fresh, detection active: no banner or notices.
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
    expect(screen.queryByText(/building baseline/)).not.toBeInTheDocument();
    expect(screen.queryByText(/stale/)).not.toBeInTheDocument();
  });

  it("says over target and that tokens are estimates", async () => {
    mockApi({
      [SUMMARY]: makeSummary({ latency_p95_ms: 2600, p95_over_threshold: true, tokeniser_share: 0.4 }),
      [ANOMALIES]: { anomalies: [] },
    });
    renderWithProviders(<OverviewPage />);
    expect(await screen.findByRole("region", { name: "p95 latency" })).toHaveTextContent("over target");
    const tokens = screen.getByRole("region", { name: "Tokens" });
    expect(tokens).toHaveTextContent("estimate");
    expect(tokens).toHaveTextContent("token counts from the tokeniser are estimates");
  });

  it("shows the degradation banner when proxies dropped events", async () => {
    mockApi({
      [SUMMARY]: makeSummary({
        pipeline: {
          events_dropped: 37,
          events_published: 14400,
          drop_rate: 0.0026,
          dropped_by_instance: { "proxy-a": 30, "proxy-b": 7 },
          ingest_lag_ms: null,
          ingest_lag_at: null,
        },
      }),
      [ANOMALIES]: { anomalies: [] },
    });
    renderWithProviders(<OverviewPage />);
    const banner = await screen.findByRole("alert");
    expect(banner).toHaveTextContent("observability degraded — data may be incomplete");
    expect(banner).toHaveTextContent("37");
    expect(banner).toHaveTextContent("proxy-a");
    expect(banner).toHaveTextContent("proxy-b");
  });

  it("shows the baseline notice while anomaly detection is not active", async () => {
    mockApi({
      [SUMMARY]: makeSummary({
        anomaly_detection: { active: false, data_since: new Date().toISOString(), active_in_hours: 31 },
      }),
      [ANOMALIES]: { anomalies: [] },
    });
    renderWithProviders(<OverviewPage />);
    expect(
      await screen.findByText("building baseline — anomaly detection active in about 31 hours"),
    ).toBeInTheDocument();
  });

  it("says when summaries are stale", async () => {
    const old = new Date(Date.now() - 25 * 60_000).toISOString();
    mockApi({ [SUMMARY]: makeSummary({}, { computed_at: old }), [ANOMALIES]: { anomalies: [] } });
    renderWithProviders(<OverviewPage />);
    expect(await screen.findByText(/summaries are stale: last computed/)).toHaveTextContent("25 min ago");
  });

  it("shows what to do next for a new organisation", async () => {
    mockApi({
      [SUMMARY]: makeEmptySummary(),
      [ANOMALIES]: { anomalies: [] },
      "GET /api/orgs/o1/keys": { keys: [makeKey({ id: "k0", display_prefix: "lc_key_old", revoked_at: new Date().toISOString() }), makeKey()] },
    });
    renderWithProviders(<OverviewPage />);
    expect(await screen.findByRole("heading", { name: "No requests yet" })).toBeInTheDocument();
    expect(screen.getByText("no summary yet — the scheduler computes them every minute")).toBeInTheDocument();
    expect((await screen.findAllByText(/lc_key_AbCd/)).length).toBeGreaterThan(0);
    expect(screen.queryByText(/lc_key_old/)).not.toBeInTheDocument();
    expect(screen.getAllByText(/http:\/\/localhost:8080\/v1/).length).toBeGreaterThan(0);
    expect(screen.queryByRole("region", { name: "Requests" })).not.toBeInTheDocument();
  });

  it("says when a period had no requests, without the getting-started guide", async () => {
    mockApi({
      [SUMMARY]: makeSummary({ requests: 0, errors: 0, error_rate: 0, cost_usd: 0, latency_p95_ms: null, series: [] }),
      [ANOMALIES]: { anomalies: [] },
    });
    renderWithProviders(<OverviewPage />);
    expect(await screen.findByText("No requests in the last 24 h")).toBeInTheDocument();
    expect(screen.queryByRole("heading", { name: "No requests yet" })).not.toBeInTheDocument();
    expect(screen.getByRole("region", { name: "p95 latency" })).toHaveTextContent("no requests");
  });

  it("switches the period through the URL", async () => {
    const api = mockApi({
      "GET /api/orgs/o1/summary?period=24h": makeSummary(),
      "GET /api/orgs/o1/summary?period=7d": makeSummary({ requests: 99000 }, { period: "7d" }),
      [ANOMALIES]: { anomalies: [] },
    });
    const { user } = renderWithProviders(<OverviewPage />);
    await screen.findByText("14,400");
    expect(screen.getByRole("button", { name: "24 h" })).toHaveAttribute("aria-pressed", "true");
    await user.click(screen.getByRole("button", { name: "7 d" }));
    expect(currentLocation()).toBe("/orgs/o1?period=7d");
    expect(await screen.findByText("99,000")).toBeInTheDocument();
    expect(api.calls.map((c) => c.query.get("period")).filter(Boolean)).toEqual(["24h", "7d"]);
  });

  it("reads the period from the URL", async () => {
    mockApi({
      "GET /api/orgs/o1/summary?period=30d": makeSummary({ series_step: "day" }, { period: "30d" }),
      [ANOMALIES]: { anomalies: [] },
    });
    renderWithProviders(<OverviewPage />, { route: "/orgs/o1?period=30d" });
    expect(await screen.findByRole("button", { name: "30 d" })).toHaveAttribute("aria-pressed", "true");
    await screen.findByText("14,400");
  });

  it("lists the period's anomalies with links to them", async () => {
    const old = makeAnomaly({ id: "a-old", window_start: "2020-01-01T00:00:00Z", window_end: "2020-01-01T01:00:00Z" });
    mockApi({ [SUMMARY]: makeSummary(), [ANOMALIES]: { anomalies: [makeAnomaly(), old] } });
    renderWithProviders(<OverviewPage />);
    const section = await screen.findByRole("region", { name: "Anomalies in this period" });
    const link = within(section).getByRole("link", { name: /Cost anomaly · feature chat/ });
    expect(link).toHaveAttribute("href", "/orgs/o1/anomalies/a1");
    expect(within(section).getAllByRole("listitem")).toHaveLength(1);
  });

  it("sends a signed-out user to sign in", async () => {
    mockApi({});
    renderWithProviders(<OverviewPage />, { session: { status: "signedOut" }, route: "/orgs/o1?period=7d" });
    await waitFor(() => expect(currentLocation()).toBe("/signin?next=%2Forgs%2Fo1%3Fperiod%3D7d"));
  });
});
