import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { apiError, mockApi, pending } from "../../test/mockApi";
import { renderWithProviders } from "../../test/render";
import AlertsSection from "./AlertsSection";
import { SETTINGS } from "./testData";
import { fill } from "./testUtils";


const ROUTE = "/orgs/o1/settings";
const GET = "GET /api/orgs/o1/settings";
const PATCH = "PATCH /api/orgs/o1/settings";

function group(name: string): HTMLElement {
  return screen.getByRole("group", { name });
}

describe("AlertsSection", () => {
  it("shows loading and errors", async () => {
    const api = mockApi({ [GET]: () => pending() });
    const { unmount } = renderWithProviders(<AlertsSection orgId="o1" admin />, { route: ROUTE });
    expect(await screen.findByRole("status")).toBeInTheDocument();
    unmount();
    api.set({ [GET]: apiError(500, "internal", "boom") });
    renderWithProviders(<AlertsSection orgId="o1" admin />, { route: ROUTE });
    expect(await screen.findByRole("alert")).toHaveTextContent("boom");
  });

  it("shows empty lists plainly", async () => {
    mockApi({ [GET]: { ...SETTINGS, alert_recipients: [], alert_webhooks: [] } });
    renderWithProviders(<AlertsSection orgId="o1" admin={false} />, { route: ROUTE });
    expect(await screen.findByText(/No extra recipients/)).toBeInTheDocument();
    expect(screen.getByText("No webhooks.")).toBeInTheDocument();
  });

  it("saves the threshold and both lists (a typed, not yet added, item included)", async () => {
    const api = mockApi({
      [GET]: SETTINGS,
      [PATCH]: (req) => ({ ...SETTINGS, ...(req.body as object) }),
    });
    const { user } = renderWithProviders(<AlertsSection orgId="o1" admin />, { route: ROUTE });
    const threshold = await screen.findByLabelText("P95 latency threshold (ms)");
    expect(threshold).toHaveValue(2500);
    await user.clear(threshold);
    await fill(user, threshold, "1800");
    // add one recipient with the Add button, type another without adding it
    await fill(user, within(group("Alert recipients")).getByLabelText("New recipient"), "sre@example.com");
    await user.click(within(group("Alert recipients")).getByRole("button", { name: "Add recipient" }));
    expect(within(group("Alert recipients")).getByText("sre@example.com")).toBeInTheDocument();
    await fill(user, within(group("Alert recipients")).getByLabelText("New recipient"), "cto@example.com");
    // remove the webhook
    await user.click(
      within(group("Alert webhooks")).getByRole("button", {
        name: "Remove https://hooks.slack.com/services/T0/B0/xyz",
      }),
    );
    await user.click(screen.getByRole("button", { name: "Save settings" }));
    await waitFor(() => expect(api.callsTo(PATCH)).toHaveLength(1));
    expect(api.callsTo(PATCH)[0]?.body).toEqual({
      p95_latency_threshold_ms: 1800,
      alert_recipients: ["oncall@example.com", "sre@example.com", "cto@example.com"],
      alert_webhooks: [],
    });
    expect(await screen.findByText("Settings saved.")).toBeInTheDocument();
    expect(within(group("Alert recipients")).getByText("cto@example.com")).toBeInTheDocument();
  });

  it("adds an item with Enter", async () => {
    mockApi({ [GET]: SETTINGS });
    const { user } = renderWithProviders(<AlertsSection orgId="o1" admin />, { route: ROUTE });
    const input = await within(await screen.findByRole("group", { name: "Alert webhooks" })).findByLabelText(
      "New webhook",
    );
    await user.type(input, "https://example.com/hook{Enter}");
    expect(within(group("Alert webhooks")).getByText("https://example.com/hook")).toBeInTheDocument();
    expect(input).toHaveValue("");
  });

  it("shows the API's 400 under the list it names", async () => {
    mockApi({
      [GET]: SETTINGS,
      [PATCH]: apiError(
        400,
        "invalid_request",
        "alert_webhooks.1: Value error, must not point at a private, loopback or link-local address",
        "alert_webhooks.1",
      ),
    });
    const { user } = renderWithProviders(<AlertsSection orgId="o1" admin />, { route: ROUTE });
    const input = await screen.findByLabelText("New webhook");
    await fill(user, input, "https://10.0.0.1/hook");
    await user.click(screen.getByRole("button", { name: "Save settings" }));
    await waitFor(() => expect(input).toHaveAccessibleDescription(/must not point at a private/));
    const item = within(group("Alert webhooks")).getByText("https://10.0.0.1/hook").closest("li");
    expect(item?.className).toMatch(/invalid/);
    expect(screen.queryByText("Settings saved.")).not.toBeInTheDocument();
  });

  it("checks the threshold before calling the API", async () => {
    const api = mockApi({ [GET]: SETTINGS });
    const { user } = renderWithProviders(<AlertsSection orgId="o1" admin />, { route: ROUTE });
    const threshold = await screen.findByLabelText("P95 latency threshold (ms)");
    await user.clear(threshold);
    await user.click(screen.getByRole("button", { name: "Save settings" }));
    expect(threshold).toHaveAccessibleDescription(/more than 0/);
    expect(api.callsTo(PATCH)).toHaveLength(0);
  });

  it("is read-only below admin", async () => {
    mockApi({ [GET]: SETTINGS });
    renderWithProviders(<AlertsSection orgId="o1" admin={false} />, { route: ROUTE });
    expect(await screen.findByText("2.50 s")).toBeInTheDocument();
    expect(screen.getByText("oncall@example.com")).toBeInTheDocument();
    expect(screen.queryByRole("button")).not.toBeInTheDocument();
    expect(screen.queryByRole("textbox")).not.toBeInTheDocument();
  });
});
