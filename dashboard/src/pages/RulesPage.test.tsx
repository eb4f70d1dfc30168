import { fireEvent, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import type { Schemas } from "../api/types";
import { apiError, mockApi, pending, reply } from "../test/mockApi";
import { currentLocation, makeMe, renderWithProviders } from "../test/render";
import { ruleLink } from "./RecommendationsPage";
import RulesPage from "./RulesPage";
import { fill } from "./settings/testUtils";


type Rule = Schemas["Rule"];

const ROUTE = "/orgs/o1/rules";
const LIST = "GET /api/orgs/o1/rules";

function rule(id: string, priority: number, extra: Partial<Rule> = {}): Rule {
  return {
    id,
    name: `rule ${id}`,
    priority,
    enabled: true,
    match_feature: null,
    match_task: null,
    match_provider: null,
    match_model: null,
    target_provider: null,
    target_model: "gpt-4o-mini",
    created_at: "2026-11-30T10:00:00Z",
    updated_at: "2026-11-30T10:00:00Z",
    ...extra,
  };
}

const RULES = [
  rule("r1", 1, { name: "cheap chat", match_feature: "chat", match_provider: "openai", match_model: "gpt-4o" }),
  rule("r2", 2, { name: "summaries", match_task: "summarisation", target_provider: "anthropic", target_model: "claude-3-5-haiku" }),
  rule("r3", 3, { name: "off rule", enabled: false }),
];

const DRY_RUN: Schemas["DryRun"] = {
  window_start: "2026-11-25T15:00:00Z",
  window_end: "2026-12-02T15:00:00Z",
  matched_requests: 1234,
  cost_before_usd: 45.5,
  cost_after_usd: 3.25,
  by_model: [
    { model: "gpt-4o", requests: 1200, cost_before_usd: 45.5, cost_after_usd: 3.25, unpriced_requests: 0 },
    { model: "gpt-4o-2024-08-06", requests: 34, cost_before_usd: 0, cost_after_usd: 0, unpriced_requests: 34 },
  ],
};

function rowOf(name: string): HTMLElement {
  const row = screen.getByRole("rowheader", { name }).closest("tr");
  if (!row) throw new Error(`no row ${name}`);
  return row;
}

function names(): string[] {
  return screen.getAllByRole("rowheader").map((cell) => cell.textContent ?? "");
}

describe("RulesPage", () => {
  it("shows a loading state", async () => {
    mockApi({ [LIST]: () => pending() });
    renderWithProviders(<RulesPage />, { route: ROUTE });
    expect(await screen.findByRole("status")).toHaveTextContent(/Loading/);
    expect(screen.getByRole("heading", { level: 1, name: "Rules" })).toBeInTheDocument();
  });

  it("shows the API's error", async () => {
    mockApi({ [LIST]: apiError(503, "unavailable", "the database is unavailable") });
    renderWithProviders(<RulesPage />, { route: ROUTE });
    expect(await screen.findByRole("alert")).toHaveTextContent("the database is unavailable");
  });

  it("shows an empty state, with New rule for admins", async () => {
    mockApi({ [LIST]: { rules: [] } });
    renderWithProviders(<RulesPage />, { route: ROUTE, me: makeMe("admin") });
    expect(await screen.findByText("No routing rules yet")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "New rule" })).toBeInTheDocument();
  });

  it("lists rules in priority order with their conditions and targets", async () => {
    mockApi({ [LIST]: { rules: RULES } });
    renderWithProviders(<RulesPage />, { route: ROUTE });
    await screen.findByRole("rowheader", { name: "cheap chat" });
    expect(names()).toEqual(["cheap chat", "summaries", "off rule"]);
    const first = rowOf("cheap chat");
    expect(first).toHaveTextContent("feature chat · provider openai · model gpt-4o");
    expect(first).toHaveTextContent("same provider / gpt-4o-mini");
    expect(rowOf("summaries")).toHaveTextContent("anthropic / claude-3-5-haiku");
    expect(rowOf("off rule")).toHaveTextContent("every request");
    expect(within(rowOf("off rule")).getByRole("switch")).not.toBeChecked();
  });

  it("shows viewers the list only, without any write control", async () => {
    mockApi({ [LIST]: { rules: RULES } });
    renderWithProviders(<RulesPage />, { route: ROUTE, me: makeMe("viewer") });
    await screen.findByRole("rowheader", { name: "cheap chat" });
    for (const name of ["New rule", "Edit", "Delete", "Move up", "Move down", "Preview", "Save rule"]) {
      expect(screen.queryByRole("button", { name })).not.toBeInTheDocument();
    }
    expect(screen.queryByRole("switch")).not.toBeInTheDocument();
    expect(screen.queryByRole("checkbox")).not.toBeInTheDocument();
    expect(rowOf("cheap chat")).not.toHaveAttribute("draggable");
    expect(rowOf("off rule")).toHaveTextContent("Off");
  });

  it("also hides write controls from members", async () => {
    mockApi({ [LIST]: { rules: RULES } });
    renderWithProviders(<RulesPage />, { route: ROUTE, me: makeMe("member") });
    await screen.findByRole("rowheader", { name: "cheap chat" });
    expect(screen.queryByRole("button", { name: "New rule" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Move up" })).not.toBeInTheDocument();
  });

  it("creates a rule with the form's body (empty conditions are null)", async () => {
    const created = rule("r4", 4, { name: "support cheaper", match_feature: "support" });
    const api = mockApi({
      [LIST]: { rules: RULES },
      "POST /api/orgs/o1/rules": reply(201, { ...created, proxies: null }),
    });
    const { user } = renderWithProviders(<RulesPage />, { route: ROUTE, me: makeMe("admin") });
    await user.click(await screen.findByRole("button", { name: "New rule" }));
    await fill(user, screen.getByLabelText("Name"), "support cheaper");
    await fill(user, screen.getByLabelText("Match feature"), "support");
    await user.selectOptions(screen.getByLabelText("Match provider"), "openai");
    await fill(user, screen.getByLabelText("Target model"), "gpt-4o-mini");
    await user.click(screen.getByRole("button", { name: "Save rule" }));
    await waitFor(() => expect(api.callsTo("POST /api/orgs/o1/rules")).toHaveLength(1));
    expect(api.callsTo("POST /api/orgs/o1/rules")[0]?.body).toEqual({
      name: "support cheaper",
      priority: null,
      enabled: true,
      match_feature: "support",
      match_task: null,
      match_provider: "openai",
      match_model: null,
      target_provider: null,
      target_model: "gpt-4o-mini",
    });
    expect(await screen.findByText(/Rule support cheaper created/)).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Save rule" })).not.toBeInTheDocument();
    await waitFor(() => expect(api.callsTo(LIST).length).toBeGreaterThanOrEqual(2));
  });

  it("shows the API's 400 next to the field it names", async () => {
    const api = mockApi({
      [LIST]: { rules: RULES },
      "POST /api/orgs/o1/rules": apiError(
        400,
        "invalid_request",
        "target_model: String should have at most 200 characters",
        "target_model",
      ),
    });
    const { user } = renderWithProviders(<RulesPage />, { route: ROUTE, me: makeMe("owner") });
    await user.click(await screen.findByRole("button", { name: "New rule" }));
    await fill(user, screen.getByLabelText("Name"), "too long");
    await fill(user, screen.getByLabelText("Target model"), "x".repeat(20));
    await user.click(screen.getByRole("button", { name: "Save rule" }));
    const target = screen.getByLabelText("Target model");
    await waitFor(() =>
      expect(target).toHaveAccessibleDescription("target_model: String should have at most 200 characters"),
    );
    expect(target).toHaveAttribute("aria-invalid", "true");
    expect(screen.getByLabelText("Name")).not.toHaveAttribute("aria-invalid");
    expect(api.callsTo("POST /api/orgs/o1/rules")).toHaveLength(1);
    // the form stays open with what was typed
    expect(screen.getByLabelText("Name")).toHaveValue("too long");
  });

  it("requires a target before calling the API", async () => {
    const api = mockApi({ [LIST]: { rules: [] } });
    const { user } = renderWithProviders(<RulesPage />, { route: ROUTE, me: makeMe("admin") });
    await user.click(await screen.findByRole("button", { name: "New rule" }));
    await fill(user, screen.getByLabelText("Name"), "no target");
    await user.click(screen.getByRole("button", { name: "Save rule" }));
    expect(screen.getByLabelText("Target model")).toHaveAccessibleDescription(/needs a target/);
    await user.click(screen.getByRole("button", { name: "Preview" }));
    expect(api.callsTo("POST /api/orgs/o1/rules")).toHaveLength(0);
    expect(api.callsTo("POST /api/orgs/o1/rules/dry-run")).toHaveLength(0);
  });

  it("previews the draft with a dry run before saving", async () => {
    const api = mockApi({
      [LIST]: { rules: RULES },
      "POST /api/orgs/o1/rules/dry-run": DRY_RUN,
    });
    const { user } = renderWithProviders(<RulesPage />, { route: ROUTE, me: makeMe("admin") });
    await user.click(await screen.findByRole("button", { name: "New rule" }));
    await fill(user, screen.getByLabelText("Name"), "chat mini");
    await fill(user, screen.getByLabelText("Match feature"), "chat");
    await user.selectOptions(screen.getByLabelText("Target provider"), "openai");
    await fill(user, screen.getByLabelText("Target model"), "gpt-4o-mini");
    await user.click(screen.getByRole("button", { name: "Preview" }));

    const preview = await screen.findByRole("region", { name: "Preview" });
    expect(api.callsTo("POST /api/orgs/o1/rules/dry-run")[0]?.body).toMatchObject({
      name: "chat mini",
      match_feature: "chat",
      target_provider: "openai",
      target_model: "gpt-4o-mini",
      priority: null,
    });
    expect(within(preview).getByTestId("dry-run-matched")).toHaveTextContent("1,234");
    expect(within(preview).getByTestId("dry-run-before")).toHaveTextContent("$45.50");
    expect(within(preview).getByTestId("dry-run-after")).toHaveTextContent("$3.25");
    expect(within(preview).getByTestId("dry-run-change")).toHaveTextContent("$42.25");
    const gpt4o = within(preview).getByRole("rowheader", { name: "gpt-4o" }).closest("tr");
    expect(gpt4o).toHaveTextContent("1,200");
    expect(gpt4o).toHaveTextContent("$45.50");
    const total = within(preview).getByRole("rowheader", { name: "Total" }).closest("tr");
    expect(total).toHaveTextContent("1,234");
    expect(total).toHaveTextContent("34");
    expect(within(preview).getByText(/34 unpriced requests/)).toBeInTheDocument();
    // nothing saved yet
    expect(api.callsTo("POST /api/orgs/o1/rules")).toHaveLength(0);

    // a change to the draft marks the preview as stale
    await fill(user, screen.getByLabelText("Match task"), "x");
    expect(within(preview).getByText(/draft changed since this preview/)).toBeInTheDocument();
  });

  it("previews an edited rule in its own place, naming the rule it replaces", async () => {
    const api = mockApi({
      [LIST]: { rules: RULES },
      "POST /api/orgs/o1/rules/dry-run": { ...DRY_RUN, matched_requests: 0, by_model: [], cost_before_usd: 0, cost_after_usd: 0 },
    });
    const { user } = renderWithProviders(<RulesPage />, { route: ROUTE, me: makeMe("admin") });
    await screen.findByRole("rowheader", { name: "summaries" });
    await user.click(within(rowOf("summaries")).getByRole("button", { name: "Edit" }));
    await user.click(screen.getByRole("button", { name: "Preview" }));
    expect(await screen.findByText(/No request of the last 7 days/)).toBeInTheDocument();
    expect(api.callsTo("POST /api/orgs/o1/rules/dry-run")[0]?.body).toMatchObject({
      name: "summaries",
      priority: 2,
      match_task: "summarisation",
      replaces: "r2",
    });
  });

  it("edits a rule with a PATCH of every field", async () => {
    const api = mockApi({
      [LIST]: { rules: RULES },
      "PATCH /api/orgs/o1/rules/r2": (req) => ({ ...RULES[1], ...(req.body as object), proxies: null }),
    });
    const { user } = renderWithProviders(<RulesPage />, { route: ROUTE, me: makeMe("admin") });
    await screen.findByRole("rowheader", { name: "summaries" });
    await user.click(within(rowOf("summaries")).getByRole("button", { name: "Edit" }));
    expect(screen.getByLabelText("Name")).toHaveValue("summaries");
    expect(screen.getByLabelText("Match task")).toHaveValue("summarisation");
    expect(screen.getByLabelText("Target provider")).toHaveValue("anthropic");
    await user.clear(screen.getByLabelText("Match task"));
    await user.click(screen.getByRole("button", { name: "Save rule" }));
    await waitFor(() => expect(api.callsTo("PATCH /api/orgs/o1/rules/r2")).toHaveLength(1));
    expect(api.callsTo("PATCH /api/orgs/o1/rules/r2")[0]?.body).toEqual({
      name: "summaries",
      priority: 2,
      enabled: true,
      match_feature: null,
      match_task: null,
      match_provider: null,
      match_model: null,
      target_provider: "anthropic",
      target_model: "claude-3-5-haiku",
    });
  });

  it("moves a rule down with the full new order, at once", async () => {
    let release: (value: unknown) => void = () => undefined;
    const api = mockApi({
      [LIST]: { rules: RULES },
      "PUT /api/orgs/o1/rules/order": () =>
        new Promise((resolve) => {
          release = resolve;
        }),
    });
    const { user } = renderWithProviders(<RulesPage />, { route: ROUTE, me: makeMe("admin") });
    await screen.findByRole("rowheader", { name: "cheap chat" });
    expect(within(rowOf("cheap chat")).getByRole("button", { name: "Move up" })).toBeDisabled();
    expect(within(rowOf("off rule")).getByRole("button", { name: "Move down" })).toBeDisabled();
    await user.click(within(rowOf("cheap chat")).getByRole("button", { name: "Move down" }));
    // optimistic: the new order shows before the API answers
    await waitFor(() => expect(names()).toEqual(["summaries", "cheap chat", "off rule"]));
    expect(api.callsTo("PUT /api/orgs/o1/rules/order")[0]?.body).toEqual({ ids: ["r2", "r1", "r3"] });
    const reordered = [
      { ...RULES[1], priority: 1 },
      { ...RULES[0], priority: 2 },
      RULES[2],
    ];
    api.set({ [LIST]: { rules: reordered } });
    release({ rules: reordered, proxies: null });
    await waitFor(() => expect(within(rowOf("cheap chat")).getAllByRole("cell")[0]).toHaveTextContent("2"));
    expect(names()).toEqual(["summaries", "cheap chat", "off rule"]);
  });

  it("moves a rule up, and rolls the order back when the API refuses", async () => {
    const api = mockApi({
      [LIST]: { rules: RULES },
      "PUT /api/orgs/o1/rules/order": apiError(400, "invalid_request", "ids must list each of the org's rules once", "ids"),
    });
    const { user } = renderWithProviders(<RulesPage />, { route: ROUTE, me: makeMe("admin") });
    await screen.findByRole("rowheader", { name: "off rule" });
    await user.click(within(rowOf("off rule")).getByRole("button", { name: "Move up" }));
    expect(await screen.findByRole("alert")).toHaveTextContent(
      "The new order was not saved: ids must list each of the org's rules once",
    );
    expect(api.callsTo("PUT /api/orgs/o1/rules/order")[0]?.body).toEqual({ ids: ["r1", "r3", "r2"] });
    await waitFor(() => expect(names()).toEqual(["cheap chat", "summaries", "off rule"]));
  });

  it("reorders by drag and drop", async () => {
    let stored = RULES;
    const api = mockApi({
      [LIST]: () => ({ rules: stored }),
      "PUT /api/orgs/o1/rules/order": (req) => {
        const ids = (req.body as { ids: string[] }).ids;
        stored = ids.map((id, i) => ({ ...(RULES.find((r) => r.id === id) as Rule), priority: i + 1 }));
        return { rules: stored, proxies: null };
      },
    });
    renderWithProviders(<RulesPage />, { route: ROUTE, me: makeMe("admin") });
    await screen.findByRole("rowheader", { name: "off rule" });
    const source = rowOf("off rule");
    const target = rowOf("cheap chat");
    expect(source).toHaveAttribute("draggable", "true");
    const store = new Map<string, string>();
    const dataTransfer = {
      setData: (k: string, v: string) => store.set(k, v),
      getData: (k: string) => store.get(k) ?? "",
      effectAllowed: "",
      dropEffect: "",
    };
    fireEvent.dragStart(source, { dataTransfer });
    fireEvent.dragOver(target, { dataTransfer });
    fireEvent.drop(target, { dataTransfer });
    await waitFor(() => expect(api.callsTo("PUT /api/orgs/o1/rules/order")).toHaveLength(1));
    expect(api.callsTo("PUT /api/orgs/o1/rules/order")[0]?.body).toEqual({ ids: ["r3", "r1", "r2"] });
    await waitFor(() => expect(names()).toEqual(["off rule", "cheap chat", "summaries"]));
    expect(within(rowOf("off rule")).getAllByRole("cell")[0]).toHaveTextContent("1");
  });

  it("enables and disables a rule with a PATCH of enabled", async () => {
    let stored = RULES;
    const api = mockApi({
      [LIST]: () => ({ rules: stored }),
      "PATCH /api/orgs/o1/rules/r3": (req) => {
        stored = stored.map((r) => (r.id === "r3" ? { ...r, ...(req.body as object) } : r));
        return { ...stored[2], proxies: null };
      },
    });
    const { user } = renderWithProviders(<RulesPage />, { route: ROUTE, me: makeMe("admin") });
    await screen.findByRole("rowheader", { name: "off rule" });
    await user.click(within(rowOf("off rule")).getByRole("switch"));
    await waitFor(() => expect(api.callsTo("PATCH /api/orgs/o1/rules/r3")).toHaveLength(1));
    expect(api.callsTo("PATCH /api/orgs/o1/rules/r3")[0]?.body).toEqual({ enabled: true });
    await waitFor(() => expect(within(rowOf("off rule")).getByRole("switch")).toBeChecked());
  });

  it("rolls a toggle back when the API refuses it", async () => {
    mockApi({
      [LIST]: { rules: RULES },
      "PATCH /api/orgs/o1/rules/r1": apiError(403, "forbidden", "your role does not allow this"),
    });
    const { user } = renderWithProviders(<RulesPage />, { route: ROUTE, me: makeMe("admin") });
    await screen.findByRole("rowheader", { name: "cheap chat" });
    await user.click(within(rowOf("cheap chat")).getByRole("switch"));
    expect(await screen.findByRole("alert")).toHaveTextContent("cheap chat was not disabled: your role does not allow this");
    expect(within(rowOf("cheap chat")).getByRole("switch")).toBeChecked();
  });

  it("deletes a rule after a confirmation", async () => {
    const api = mockApi({
      [LIST]: { rules: RULES },
      "DELETE /api/orgs/o1/rules/r2": { id: "r2", deleted: true, proxies: null },
    });
    const { user } = renderWithProviders(<RulesPage />, { route: ROUTE, me: makeMe("admin") });
    await screen.findByRole("rowheader", { name: "summaries" });
    await user.click(within(rowOf("summaries")).getByRole("button", { name: "Delete" }));
    expect(api.callsTo("DELETE /api/orgs/o1/rules/r2")).toHaveLength(0);
    api.set({ [LIST]: { rules: [RULES[0], RULES[2]] } });
    await user.click(within(rowOf("summaries")).getByRole("button", { name: "Yes, delete" }));
    await waitFor(() => expect(api.callsTo("DELETE /api/orgs/o1/rules/r2")).toHaveLength(1));
    await waitFor(() => expect(names()).toEqual(["cheap chat", "off rule"]));
    expect(screen.getByText(/Rule summaries deleted/)).toBeInTheDocument();
  });

  it("opens the create form pre-filled from a recommendation's Create a rule", async () => {
    const link = ruleLink("o1", {
      id: "rec1",
      org_id: "o1",
      feature: "support-bot",
      task_type: "classification",
      provider: "openai",
      current_model: "gpt-4o",
      recommended_model: "gpt-4o-mini",
      steps: 1,
      window_start: "2026-11-02T15:00:00Z",
      window_end: "2026-12-02T15:00:00Z",
      request_count: 5000,
      current_cost_usd: 100,
      projected_cost_usd: 10,
      projected_savings_usd: 90,
      rationale: "",
      confidence: "high",
      details: {},
      status: "open",
      created_at: "2026-12-02T03:00:00Z",
      updated_at: "2026-12-02T03:00:00Z",
    });
    const api = mockApi({
      [LIST]: { rules: RULES },
      "POST /api/orgs/o1/rules/dry-run": DRY_RUN,
    });
    const { user } = renderWithProviders(<RulesPage />, { route: link, me: makeMe("admin") });
    expect(await screen.findByRole("heading", { name: "New rule" })).toBeInTheDocument();
    expect(screen.getByLabelText("Name")).toHaveValue("support-bot: gpt-4o → gpt-4o-mini");
    expect(screen.getByLabelText("Match feature")).toHaveValue("support-bot");
    expect(screen.getByLabelText("Match task")).toHaveValue("classification");
    expect(screen.getByLabelText("Match provider")).toHaveValue("openai");
    expect(screen.getByLabelText("Match model")).toHaveValue("gpt-4o");
    expect(screen.getByLabelText("Target provider")).toHaveValue("openai");
    expect(screen.getByLabelText("Target model")).toHaveValue("gpt-4o-mini");
    expect(screen.getByLabelText("Enabled")).toBeChecked();
    // the pre-fill is read once: the query string is cleaned up
    await waitFor(() => expect(currentLocation()).toBe("/orgs/o1/rules"));
    await user.click(screen.getByRole("button", { name: "Preview" }));
    expect(await screen.findByTestId("dry-run-matched")).toHaveTextContent("1,234");
    expect(api.callsTo("POST /api/orgs/o1/rules/dry-run")[0]?.body).toMatchObject({
      match_feature: "support-bot",
      match_task: "classification",
      match_provider: "openai",
      match_model: "gpt-4o",
      target_provider: "openai",
      target_model: "gpt-4o-mini",
    });
  });

  it("ignores the pre-fill for viewers", async () => {
    mockApi({ [LIST]: { rules: RULES } });
    renderWithProviders(<RulesPage />, {
      route: "/orgs/o1/rules?new=1&feature=chat&target_model=x",
      me: makeMe("viewer"),
    });
    await screen.findByRole("rowheader", { name: "cheap chat" });
    expect(screen.queryByLabelText("Name")).not.toBeInTheDocument();
  });
});
