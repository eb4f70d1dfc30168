import { screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { makeAnomaly } from "../test/fixtures";
import { apiError, mockApi, pending } from "../test/mockApi";
import { currentLocation, makeMe, renderWithProviders } from "../test/render";
import AnomaliesPage from "./AnomaliesPage";
import AnomalyPage from "./AnomalyPage";

const LIST = "GET /api/orgs/o1/anomalies";
const ROUTE = "/orgs/o1/anomalies";

describe("AnomaliesPage", () => {
  it("shows loading, then an error with a retry", async () => {
    const api = mockApi({ [LIST]: () => pending() });
    const first = renderWithProviders(<AnomaliesPage />, { route: ROUTE });
    expect(screen.getByRole("heading", { level: 1, name: "Anomalies" })).toBeInTheDocument();
    expect(screen.getByRole("status")).toHaveTextContent("Loading");
    first.unmount();

    api.set({ [LIST]: apiError(503, "database_unavailable", "The database is unavailable") });
    const { user } = renderWithProviders(<AnomaliesPage />, { route: ROUTE });
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("The database is unavailable");
    api.set({ [LIST]: { anomalies: [] } });
    await user.click(within(alert).getByRole("button", { name: "Retry" }));
    expect(await screen.findByRole("heading", { name: "No anomalies" })).toBeInTheDocument();
  });

  it("shows each anomaly with its scope, window and values in its unit", async () => {
    mockApi({
      [LIST]: {
        anomalies: [
          makeAnomaly(),
          makeAnomaly({ id: "a2", kind: "latency", severity: "warning", feature: null, observed: 2450, baseline: 900, baseline_stddev: 120 }),
          makeAnomaly({ id: "a3", kind: "error_rate", status: "resolved", observed: 0.125, baseline: 0.01, baseline_stddev: 0.004 }),
          makeAnomaly({ id: "a4", kind: "traffic", status: "dismissed", observed: 0, baseline: 120, details: { direction: "down", recent: [] } }),
          makeAnomaly({ id: "a5", kind: "model_drift", provider: "openai", model: "gpt-4o", observed: 0.42, baseline: 0, baseline_stddev: 0 }),
        ],
      },
    });
    renderWithProviders(<AnomaliesPage />, { route: ROUTE });
    const cost = await screen.findByRole("article", { name: "Cost anomaly: feature chat" });
    expect(cost).toHaveTextContent("critical");
    expect(cost).toHaveTextContent("$4.40");
    expect(cost).toHaveTextContent("$1.00");
    expect(cost).toHaveTextContent("4.4× baseline");
    expect(within(cost).getByRole("link", { name: "Cost anomaly" })).toHaveAttribute("href", "/orgs/o1/anomalies/a1");

    const latency = screen.getByRole("article", { name: "Latency anomaly: whole organisation" });
    expect(latency).toHaveTextContent("2.45 s");
    expect(latency).toHaveTextContent("900 ms");
    expect(screen.getByRole("article", { name: /Error rate anomaly/ })).toHaveTextContent("12.5 %");
    const traffic = screen.getByRole("article", { name: /Traffic anomaly/ });
    expect(traffic).toHaveTextContent("0 requests");
    expect(traffic).toHaveTextContent("below baseline");
    expect(screen.getByRole("article", { name: "Model drift anomaly: feature chat · openai / gpt-4o" })).toHaveTextContent("42.0 %");
  });

  it("lets members dismiss an open anomaly", async () => {
    let dismissed = false;
    const api = mockApi({
      [LIST]: () => ({ anomalies: [makeAnomaly({ status: dismissed ? "dismissed" : "open" })] }),
      "POST /api/orgs/o1/anomalies/a1/dismiss": () => {
        dismissed = true;
        return makeAnomaly({ status: "dismissed" });
      },
    });
    const { user } = renderWithProviders(<AnomaliesPage />, { route: ROUTE, me: makeMe("member") });
    await user.click(await screen.findByRole("button", { name: "Dismiss" }));
    expect(await screen.findByText("dismissed")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Dismiss" })).not.toBeInTheDocument();
    expect(api.callsTo("POST /api/orgs/o1/anomalies/a1/dismiss")).toHaveLength(1);
    expect(api.callsTo(LIST)).toHaveLength(2);
  });

  it("shows a failed dismissal", async () => {
    mockApi({
      [LIST]: { anomalies: [makeAnomaly()] },
      "POST /api/orgs/o1/anomalies/a1/dismiss": apiError(404, "not_found", "anomaly not found"),
    });
    const { user } = renderWithProviders(<AnomaliesPage />, { route: ROUTE, me: makeMe("admin") });
    await user.click(await screen.findByRole("button", { name: "Dismiss" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("anomaly not found");
  });

  it("hides Dismiss from viewers", async () => {
    mockApi({ [LIST]: { anomalies: [makeAnomaly()] } });
    renderWithProviders(<AnomaliesPage />, { route: ROUTE, me: makeMe("viewer") });
    await screen.findByRole("article", { name: /Cost anomaly/ });
    expect(screen.queryByRole("button", { name: "Dismiss" })).not.toBeInTheDocument();
  });

  it("filters by status through the URL", async () => {
    const api = mockApi({
      [LIST]: { anomalies: [] },
      "GET /api/orgs/o1/anomalies?status=open": { anomalies: [] },
    });
    const { user } = renderWithProviders(<AnomaliesPage />, { route: ROUTE });
    await screen.findByRole("heading", { name: "No anomalies" });
    await user.click(screen.getByRole("button", { name: "Open" }));
    expect(currentLocation()).toBe(`${ROUTE}?status=open`);
    expect(await screen.findByRole("heading", { name: "No open anomalies" })).toBeInTheDocument();
    expect(api.calls.map((c) => c.query.get("status"))).toEqual([null, "open"]);
  });
});

describe("AnomalyPage", () => {
  it("shows one anomaly in full", async () => {
    mockApi({ [LIST]: { anomalies: [makeAnomaly({ id: "a0", kind: "traffic" }), makeAnomaly()] } });
    renderWithProviders(<AnomalyPage />, { route: "/orgs/o1/anomalies/a1" });
    expect(screen.getByRole("heading", { level: 1, name: "Anomaly" })).toBeInTheDocument();
    const card = await screen.findByRole("article", { name: "Cost anomaly: feature chat" });
    expect(card).toHaveTextContent("Requests in window");
    expect(card).toHaveTextContent("900");
    expect(screen.queryByRole("article", { name: /Traffic/ })).not.toBeInTheDocument();
    expect(screen.getByRole("link", { name: "All anomalies" })).toHaveAttribute("href", "/orgs/o1/anomalies");
    expect(within(card).getByRole("button", { name: "Dismiss" })).toBeInTheDocument();
  });

  it("says when it was detected once, in the normal font", async () => {
    mockApi({ [LIST]: { anomalies: [makeAnomaly()] } });
    renderWithProviders(<AnomalyPage />, { route: "/orgs/o1/anomalies/a1" });
    const card = await screen.findByRole("article", { name: "Cost anomaly: feature chat" });
    expect(within(card).getAllByText(/Detected/)).toHaveLength(1);
    const meta = card.querySelector('dl[aria-label="Detection"]');
    expect(meta).toHaveTextContent("Detected");
    // Not the request-details grid, whose values are monospace.
    expect(meta).toHaveClass("anomaly-meta");
    expect(card.querySelector(".details-grid")).toBeNull();
  });

  it("says when an anomaly in the list was detected once", async () => {
    mockApi({ [LIST]: { anomalies: [makeAnomaly()] } });
    renderWithProviders(<AnomaliesPage />, { route: ROUTE });
    const card = await screen.findByRole("article", { name: "Cost anomaly: feature chat" });
    expect(within(card).getAllByText(/Detected/)).toHaveLength(1);
  });

  it("says when the anomaly does not exist", async () => {
    mockApi({ [LIST]: { anomalies: [makeAnomaly()] } });
    renderWithProviders(<AnomalyPage />, { route: "/orgs/o1/anomalies/nope" });
    expect(await screen.findByRole("heading", { name: "Anomaly not found" })).toBeInTheDocument();
  });
});
