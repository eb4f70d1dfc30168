import { screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { makeRequestLog } from "../test/fixtures";
import { apiError, mockApi, pending } from "../test/mockApi";
import { currentLocation, renderWithProviders } from "../test/render";
import RequestsPage from "./RequestsPage";
import { isoToLocalInput, localInputToIso } from "./requests/filters";

const REQUESTS = "GET /api/orgs/o1/requests";
const ROUTE = "/orgs/o1/requests";

describe("RequestsPage", () => {
  it("shows a loading state", () => {
    mockApi({ [REQUESTS]: () => pending() });
    renderWithProviders(<RequestsPage />, { route: ROUTE });
    expect(screen.getByRole("heading", { level: 1, name: "Requests" })).toBeInTheDocument();
    expect(screen.getByRole("status")).toHaveTextContent("Loading");
  });

  it("shows an error with a retry", async () => {
    const api = mockApi({ [REQUESTS]: apiError(500, "internal_error", "Internal server error") });
    const { user } = renderWithProviders(<RequestsPage />, { route: ROUTE });
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("Internal server error");
    api.set({ [REQUESTS]: { requests: [makeRequestLog()], next_cursor: null } });
    await user.click(within(alert).getByRole("button", { name: "Retry" }));
    expect(await screen.findByText("gpt-4o")).toBeInTheDocument();
  });

  it("shows an empty state", async () => {
    mockApi({ [REQUESTS]: { requests: [], next_cursor: null } });
    renderWithProviders(<RequestsPage />, { route: ROUTE });
    expect(await screen.findByRole("heading", { name: "No requests found" })).toBeInTheDocument();
  });

  it("lists requests, expands one to every field and loads more", async () => {
    const first = makeRequestLog({ requested_model: "gpt-4o", actual_model: "gpt-4o-mini", rule_id: "22222222-2222-4222-8222-222222222222" });
    const second = makeRequestLog({ status_code: 502, error_category: "upstream_error", error_source: "provider" });
    const third = makeRequestLog({ feature: "search", provider: "anthropic", requested_model: "claude-3-5-haiku", actual_model: "claude-3-5-haiku" });
    const api = mockApi({
      [REQUESTS]: (req) =>
        req.query.get("cursor") === "c2"
          ? { requests: [third], next_cursor: null }
          : { requests: [first, second], next_cursor: "c2" },
    });
    const { user } = renderWithProviders(<RequestsPage />, { route: ROUTE });
    expect(await screen.findByText("gpt-4o → gpt-4o-mini")).toBeInTheDocument();
    expect(screen.getByText("502")).toHaveClass("status-5xx");
    expect(api.calls[0]!.query.get("limit")).toBe("50");

    const toggles = screen.getAllByRole("button", { name: "Show details" });
    await user.click(toggles[0]!);
    const details = screen.getByLabelText("Request details");
    expect(details).toHaveTextContent(first.id);
    expect(details).toHaveTextContent("/v1/chat/completions");
    expect(details).toHaveTextContent("gpt-4o-2024-08-06");
    expect(details).toHaveTextContent("22222222-2222-4222-8222-222222222222");
    expect(details).toHaveTextContent("proxy-a");
    expect(screen.getByRole("button", { name: "Hide details" })).toHaveAttribute("aria-expanded", "true");

    await user.click(screen.getByRole("button", { name: "Load more" }));
    expect(await screen.findByText("claude-3-5-haiku")).toBeInTheDocument();
    expect(api.calls[1]!.query.get("cursor")).toBe("c2");
    expect(screen.queryByRole("button", { name: "Load more" })).not.toBeInTheDocument();
    expect(screen.getByText("3 rows")).toBeInTheDocument();
  });

  it("puts the filters into the query string and the API call", async () => {
    const api = mockApi({ [REQUESTS]: { requests: [], next_cursor: null } });
    const { user } = renderWithProviders(<RequestsPage />, { route: ROUTE });
    await screen.findByRole("heading", { name: "No requests found" });
    await user.type(screen.getByLabelText("Feature"), "chat");
    await user.type(screen.getByLabelText("Model"), "gpt-4o");
    await user.selectOptions(screen.getByLabelText("Provider"), "openai");
    await user.selectOptions(screen.getByLabelText("Status"), "5xx");
    await user.selectOptions(screen.getByLabelText("Task"), "extraction");
    await user.selectOptions(screen.getByLabelText("Streaming"), "true");
    await user.type(screen.getByLabelText("Since"), "2026-11-30T08:15");
    await user.click(screen.getByRole("button", { name: "Apply filters" }));

    const since = localInputToIso("2026-11-30T08:15")!;
    const params = new URLSearchParams(currentLocation().split("?")[1]);
    expect(Object.fromEntries(params)).toEqual({
      since,
      feature: "chat",
      model: "gpt-4o",
      provider: "openai",
      status: "5xx",
      task: "extraction",
      streaming: "true",
    });
    await screen.findByRole("heading", { name: "No requests found" });
    const last = api.calls[api.calls.length - 1]!;
    expect(last.query.get("status")).toBe("5xx");
    expect(last.query.get("since")).toBe(since);
    expect(last.query.get("streaming")).toBe("true");
    expect(since).toMatch(/^2026-11-30T08:15:00[+-]\d\d:\d\d$/);
  });

  it("reads filters from the URL into the form and the API call", async () => {
    const api = mockApi({ [REQUESTS]: { requests: [], next_cursor: null } });
    const { user } = renderWithProviders(<RequestsPage />, {
      route: `${ROUTE}?status=error&provider=anthropic&until=2026-12-01T10:00:00Z`,
    });
    await screen.findByRole("heading", { name: "No requests found" });
    expect(screen.getByLabelText("Status")).toHaveValue("error");
    expect(screen.getByLabelText("Provider")).toHaveValue("anthropic");
    expect(screen.getByLabelText("Until")).toHaveValue(isoToLocalInput("2026-12-01T10:00:00Z"));
    expect(api.calls[0]!.query.get("status")).toBe("error");
    expect(api.calls[0]!.query.get("until")).toBe("2026-12-01T10:00:00Z");
    await user.click(screen.getByRole("button", { name: "Clear" }));
    expect(currentLocation()).toBe(ROUTE);
  });
});
