import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import type { Schemas } from "../api/types";
import { apiError, mockApi, pending } from "../test/mockApi";
import { currentLocation, makeMe, renderWithProviders } from "../test/render";
import RecommendationsPage, { evidenceOf, monthlySaving } from "./RecommendationsPage";


type Recommendation = Schemas["Recommendation"];

const ROUTE = "/orgs/o1/recommendations";
const LIST = "GET /api/orgs/o1/recommendations";

function rec(id: string, extra: Partial<Recommendation> = {}): Recommendation {
  return {
    id,
    org_id: "o1",
    feature: "support-bot",
    task_type: "classification",
    provider: "openai",
    current_model: "gpt-4o",
    recommended_model: "gpt-4o-mini",
    steps: 1,
    window_start: "2026-11-02T15:00:00Z",
    window_end: "2026-12-02T15:00:00Z",
    request_count: 5210,
    current_cost_usd: 182.4,
    projected_cost_usd: 10.94,
    projected_savings_usd: 171.46,
    rationale:
      "support-bot sends short classification prompts (mean 310 tokens in, 12 out) with a 0.4 % error rate; gpt-4o-mini should serve it for about $171.46 less a month.",
    confidence: "high",
    details: {
      signals: {
        requests: 5210,
        errors: 21,
        error_rate: 0.004,
        mean_prompt_tokens: 310.4,
        mean_completion_tokens: 12.2,
        p95_latency_ms: 1840,
        dominant_task_type: "classification",
        dominant_share: 0.92,
        unpriced_requests: 0,
      },
      rule: "classification: up to two steps",
      heuristics_agree: true,
      heuristic_misses: [],
      downgrade: { matched_model: "gpt-4o", target_model: "gpt-4o-mini", steps: 1 },
      current_cost_usd: "182.40",
      projected_cost_usd: "10.94",
      monthly_saving_usd: "171.46",
      coverage: { scaled_to_30_days: false, days: 30 },
    },
    status: "open",
    created_at: "2026-12-02T03:00:00Z",
    updated_at: "2026-12-02T03:00:00Z",
    ...extra,
  };
}

describe("RecommendationsPage", () => {
  it("shows a loading state", async () => {
    mockApi({ [LIST]: () => pending() });
    renderWithProviders(<RecommendationsPage />, { route: ROUTE });
    expect(await screen.findByRole("status")).toHaveTextContent(/Loading/);
    expect(screen.getByRole("heading", { level: 1, name: "Recommendations" })).toBeInTheDocument();
  });

  it("shows the API's error", async () => {
    mockApi({ [LIST]: apiError(503, "unavailable", "the database is unavailable") });
    renderWithProviders(<RecommendationsPage />, { route: ROUTE });
    expect(await screen.findByRole("alert")).toHaveTextContent("the database is unavailable");
  });

  it("explains when recommendations appear", async () => {
    const api = mockApi({ [LIST]: { recommendations: [] } });
    renderWithProviders(<RecommendationsPage />, { route: ROUTE });
    expect(await screen.findByText("No recommendations yet")).toBeInTheDocument();
    expect(screen.getByText(/500 or more requests to one\s+model within 30 days/)).toHaveTextContent(
      /They are computed daily/,
    );
    // open by default
    expect(api.callsTo(LIST)[0]?.query.get("status")).toBe("open");
  });

  it("shows each recommendation with its evidence, saving and costs", async () => {
    mockApi({ [LIST]: { recommendations: [rec("a")] } });
    renderWithProviders(<RecommendationsPage />, { route: ROUTE });
    const card = (await screen.findByRole("heading", { name: /support-bot/ })).closest("li") as HTMLElement;
    expect(card).toHaveTextContent("classification");
    expect(card).toHaveTextContent("openai");
    expect(card).toHaveTextContent("openai gpt-4o → gpt-4o-mini");
    expect(within(card).getByText("high confidence")).toBeInTheDocument();
    expect(card).toHaveTextContent("$171.46 / month");
    expect(card).toHaveTextContent("$182.40 now → $10.94 projected");
    expect(card).toHaveTextContent(/should serve it for about \$171.46 less a month/);
    const evidence = Object.fromEntries(
      within(card)
        .getAllByRole("term")
        .map((dt) => [dt.textContent, dt.nextElementSibling?.textContent]),
    );
    expect(evidence).toMatchObject({
      "Requests (30 days)": "5,210",
      "Mean prompt tokens": "310",
      "Mean completion tokens": "12",
      "Error rate": "0.40 %",
      "P95 latency": "1.84 s",
      "Dominant task": "classification (92 % of requests)",
      Rule: "classification: up to two steps",
      Heuristics: "all agree",
    });
  });

  it("reads what details carry, and falls back when they are missing", () => {
    const bare = rec("b", { details: {}, projected_savings_usd: 12.5, request_count: 900 });
    expect(monthlySaving(bare)).toBe(12.5);
    expect(evidenceOf(bare).map((e) => e.label)).toEqual(["Requests (30 days)", "Steps down"]);
    const scaled = rec("c", {
      details: {
        monthly_saving_usd: "40.00",
        heuristics_agree: false,
        heuristic_misses: ["mean completion tokens 620 > 400"],
        coverage: { scaled_to_30_days: true, days: 6.5 },
      },
    });
    expect(monthlySaving(scaled)).toBe(40);
    const labels = Object.fromEntries(evidenceOf(scaled).map((e) => [e.label, e.value]));
    expect(labels.Heuristics).toBe("not all agree: mean completion tokens 620 > 400");
    expect(labels.Coverage).toBe("saving projected to 30 days from 6.5 days of traffic");
  });

  it("filters by status through the query string", async () => {
    const api = mockApi({
      [LIST]: (req) =>
        req.query.get("status") === "dismissed"
          ? { recommendations: [rec("d", { status: "dismissed", feature: "old-feature" })] }
          : { recommendations: [rec("a")] },
    });
    const { user } = renderWithProviders(<RecommendationsPage />, { route: ROUTE, me: makeMe("admin") });
    await screen.findByRole("heading", { name: /support-bot/ });
    await user.selectOptions(screen.getByLabelText("Status"), "dismissed");
    expect(await screen.findByRole("heading", { name: /old-feature/ })).toBeInTheDocument();
    expect(currentLocation()).toBe("/orgs/o1/recommendations?status=dismissed");
    // a dismissed one offers no action
    expect(screen.queryByRole("button", { name: "Dismiss" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Create a rule" })).not.toBeInTheDocument();
    await user.selectOptions(screen.getByLabelText("Status"), "all");
    await waitFor(() => expect(api.calls.length).toBe(3));
    expect(api.calls[2]?.query.has("status")).toBe(false);
  });

  it("hides Dismiss and Create a rule from viewers", async () => {
    mockApi({ [LIST]: { recommendations: [rec("a")] } });
    renderWithProviders(<RecommendationsPage />, { route: ROUTE, me: makeMe("viewer") });
    await screen.findByRole("heading", { name: /support-bot/ });
    expect(screen.queryByRole("button", { name: "Dismiss" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Create a rule" })).not.toBeInTheDocument();
  });

  it("lets members dismiss but not create rules", async () => {
    let dismissed = false;
    const api = mockApi({
      [LIST]: () => ({ recommendations: dismissed ? [] : [rec("a")] }),
      "POST /api/orgs/o1/recommendations/a/dismiss": () => {
        dismissed = true;
        return { ...rec("a"), status: "dismissed" };
      },
    });
    const { user } = renderWithProviders(<RecommendationsPage />, { route: ROUTE, me: makeMe("member") });
    await screen.findByRole("heading", { name: /support-bot/ });
    expect(screen.queryByRole("button", { name: "Create a rule" })).not.toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Dismiss" }));
    await waitFor(() => expect(api.callsTo("POST /api/orgs/o1/recommendations/a/dismiss")).toHaveLength(1));
    expect(await screen.findByText("No recommendations yet")).toBeInTheDocument();
  });

  it("shows a failed dismiss", async () => {
    mockApi({
      [LIST]: { recommendations: [rec("a")] },
      "POST /api/orgs/o1/recommendations/a/dismiss": apiError(404, "not_found", "no such recommendation"),
    });
    const { user } = renderWithProviders(<RecommendationsPage />, { route: ROUTE, me: makeMe("member") });
    await user.click(await screen.findByRole("button", { name: "Dismiss" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("no such recommendation");
  });

  it("Create a rule opens the Rules page pre-filled from the recommendation", async () => {
    mockApi({ [LIST]: { recommendations: [rec("a")] } });
    const { user } = renderWithProviders(<RecommendationsPage />, { route: ROUTE, me: makeMe("admin") });
    await user.click(await screen.findByRole("button", { name: "Create a rule" }));
    const location = currentLocation();
    const [path, search] = location.split("?");
    expect(path).toBe("/orgs/o1/rules");
    expect(Object.fromEntries(new URLSearchParams(search))).toEqual({
      new: "1",
      feature: "support-bot",
      task: "classification",
      provider: "openai",
      model: "gpt-4o",
      target_provider: "openai",
      target_model: "gpt-4o-mini",
      name: "support-bot: gpt-4o → gpt-4o-mini",
    });
  });
});
