import { screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { apiError, mockApi, pending } from "../test/mockApi";
import { makeMe, renderWithProviders } from "../test/render";
import SettingsPage from "./SettingsPage";
import { settingsRoutes } from "./settings/testData";


const ROUTE = "/orgs/o1/settings";

function section(name: string): HTMLElement {
  return screen.getByRole("region", { name });
}

const WRITE_BUTTONS = [
  "Create key",
  "Revoke",
  "Invite",
  "Remove",
  "Withdraw",
  "Save settings",
  "Save limits",
  "Save Azure configuration",
  "Add deployment",
];

describe("SettingsPage", () => {
  it("shows every section loading", async () => {
    mockApi({
      "GET /api/orgs/o1/keys": () => pending(),
      "GET /api/orgs/o1/members": () => pending(),
      "GET /api/orgs/o1/invites": () => pending(),
      "GET /api/orgs/o1/settings": () => pending(),
      "GET /api/orgs/o1/providers/azure": () => pending(),
    });
    renderWithProviders(<SettingsPage />, { route: ROUTE, me: makeMe("admin") });
    expect(screen.getByRole("heading", { level: 1, name: "Settings" })).toBeInTheDocument();
    expect(await screen.findAllByRole("status")).toHaveLength(6);
  });

  it("shows the sections with their data for an owner", async () => {
    mockApi(settingsRoutes({ admin: true }));
    renderWithProviders(<SettingsPage />, { route: ROUTE, me: makeMe("owner") });
    expect(await within(section("Keys")).findByText("lc_key_AbC1…")).toBeInTheDocument();
    expect(await within(section("Members and invites")).findByText("olga@example.com")).toBeInTheDocument();
    expect(await within(section("Members and invites")).findByText("new@example.com")).toBeInTheDocument();
    expect(await within(section("Alerts and latency")).findByText("oncall@example.com")).toBeInTheDocument();
    expect(await within(section("Rate limits")).findByText(/Set by your Lectr operator/)).toBeInTheDocument();
    expect(await within(section("Azure OpenAI")).findByDisplayValue("https://acme.openai.azure.com")).toBeInTheDocument();
    for (const name of ["Create key", "Invite", "Save settings", "Save Azure configuration"]) {
      expect(screen.getByRole("button", { name })).toBeInTheDocument();
    }
    // only operators change limits
    expect(screen.queryByRole("button", { name: "Save limits" })).not.toBeInTheDocument();
  });

  it("shows viewers the values without any write control (and never asks for invites)", async () => {
    const api = mockApi(settingsRoutes());
    renderWithProviders(<SettingsPage />, { route: ROUTE, me: makeMe("viewer") });
    await within(section("Keys")).findByText("lc_key_AbC1…");
    await within(section("Members and invites")).findByText("olga@example.com");
    await within(section("Alerts and latency")).findByText("oncall@example.com");
    expect(await within(section("Azure OpenAI")).findByText("acme-gpt4o")).toBeInTheDocument();
    expect(within(section("Alerts and latency")).getByText("2.50 s")).toBeInTheDocument();
    for (const name of WRITE_BUTTONS) {
      expect(screen.queryByRole("button", { name })).not.toBeInTheDocument();
    }
    expect(screen.queryByRole("button", { name: /^Add/ })).not.toBeInTheDocument();
    expect(screen.queryByRole("combobox")).not.toBeInTheDocument();
    expect(screen.queryByRole("textbox")).not.toBeInTheDocument();
    expect(screen.queryByRole("spinbutton")).not.toBeInTheDocument();
    expect(api.callsTo("GET /api/orgs/o1/invites")).toHaveLength(0);
    expect(screen.getByText(/Only admins change these settings/)).toBeInTheDocument();
  });

  it("shows members the same read-only page", async () => {
    mockApi(settingsRoutes());
    renderWithProviders(<SettingsPage />, { route: ROUTE, me: makeMe("member") });
    await within(section("Keys")).findByText("lc_key_AbC1…");
    await within(section("Azure OpenAI")).findByText("acme-gpt4o");
    for (const name of WRITE_BUTTONS) {
      expect(screen.queryByRole("button", { name })).not.toBeInTheDocument();
    }
  });

  it("shows one section's error inside that section only", async () => {
    mockApi({
      ...settingsRoutes({ admin: true }),
      "GET /api/orgs/o1/keys": apiError(503, "unavailable", "the database is unavailable"),
    });
    renderWithProviders(<SettingsPage />, { route: ROUTE, me: makeMe("admin") });
    expect(await within(section("Keys")).findByRole("alert")).toHaveTextContent("the database is unavailable");
    expect(await within(section("Members and invites")).findByText("olga@example.com")).toBeInTheDocument();
    expect(screen.getAllByRole("alert")).toHaveLength(1);
  });

  it("gives operators the rate limits form", async () => {
    mockApi(settingsRoutes({ admin: true, operator: true }));
    renderWithProviders(<SettingsPage />, { route: ROUTE, me: makeMe("owner", { operator: true }) });
    expect(await within(section("Rate limits")).findByLabelText("Requests per minute")).toHaveValue(600);
    expect(screen.getByRole("button", { name: "Save limits" })).toBeInTheDocument();
  });
});
