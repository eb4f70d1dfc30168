import { screen, waitFor } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { apiError, mockApi } from "../../test/mockApi";
import { renderWithProviders } from "../../test/render";
import AzureSection from "./AzureSection";
import { AZURE, SETTINGS } from "./testData";
import { fill } from "./testUtils";


const ROUTE = "/orgs/o1/settings";
const GET = "GET /api/orgs/o1/providers/azure";
const PUT = "PUT /api/orgs/o1/providers/azure";
const SETTINGS_GET = "GET /api/orgs/o1/settings";
const CONFIGURED = { [SETTINGS_GET]: { ...SETTINGS, azure_configured: true } };
// An org without Azure says so in its settings, and GET …/azure (404 then) is not asked.
const NOT_SET = { [SETTINGS_GET]: { ...SETTINGS, azure_configured: false } };

describe("AzureSection", () => {
  it("sets up Azure when none is configured", async () => {
    const api = mockApi({
      ...NOT_SET,
      [PUT]: (req) => ({ ...(req.body as object), updated_at: "2026-12-02T15:00:00Z", proxies: null }),
    });
    const { user } = renderWithProviders(<AzureSection orgId="o1" admin />, { route: ROUTE });
    expect(await screen.findByText(/not configured for this organisation yet/)).toBeInTheDocument();
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
    await fill(user, screen.getByLabelText("Endpoint"), "https://acme.openai.azure.com/");
    await fill(user, screen.getByLabelText("API version"), "2024-10-21");
    await fill(user, screen.getByLabelText("Model 1"), "gpt-4o");
    await fill(user, screen.getByLabelText("Deployment 1"), "acme-gpt4o");
    await user.click(screen.getByRole("button", { name: "Add deployment" }));
    await fill(user, screen.getByLabelText("Model 2"), "gpt-4o-mini");
    await fill(user, screen.getByLabelText("Deployment 2"), "acme-mini");
    await user.click(screen.getByRole("button", { name: "Add deployment" })); // an empty row is ignored
    await user.click(screen.getByRole("button", { name: "Save Azure configuration" }));
    await waitFor(() => expect(api.callsTo(PUT)).toHaveLength(1));
    expect(api.callsTo(PUT)[0]?.body).toEqual({
      endpoint: "https://acme.openai.azure.com/",
      api_version: "2024-10-21",
      deployments: { "gpt-4o": "acme-gpt4o", "gpt-4o-mini": "acme-mini" },
    });
    expect(await screen.findByText(/Azure configuration saved/)).toBeInTheDocument();
    expect(screen.queryByText(/not configured for this organisation yet/)).not.toBeInTheDocument();
  });

  it("edits the configuration and removes a deployment", async () => {
    const api = mockApi({
      ...CONFIGURED,
      [GET]: AZURE,
      [PUT]: (req) => ({ ...(req.body as object), updated_at: "2026-12-02T15:00:00Z", proxies: null }),
    });
    const { user } = renderWithProviders(<AzureSection orgId="o1" admin />, { route: ROUTE });
    expect(await screen.findByLabelText("Endpoint")).toHaveValue("https://acme.openai.azure.com");
    expect(screen.getByLabelText("Model 1")).toHaveValue("gpt-4o");
    expect(screen.getByLabelText("Deployment 1")).toHaveValue("acme-gpt4o");
    await user.click(screen.getByRole("button", { name: "Remove deployment 1" }));
    await user.click(screen.getByRole("button", { name: "Save Azure configuration" }));
    await waitFor(() => expect(api.callsTo(PUT)).toHaveLength(1));
    expect(api.callsTo(PUT)[0]?.body).toEqual({
      endpoint: "https://acme.openai.azure.com",
      api_version: "2024-10-21",
      deployments: {},
    });
  });

  it("shows the API's 400 next to the field, and checks rows before", async () => {
    const api = mockApi({
      ...CONFIGURED,
      [GET]: AZURE,
      [PUT]: apiError(400, "invalid_request", "endpoint: the host must end with one of .openai.azure.com", "endpoint"),
    });
    const { user } = renderWithProviders(<AzureSection orgId="o1" admin />, { route: ROUTE });
    await screen.findByLabelText("Endpoint");
    await user.click(screen.getByRole("button", { name: "Add deployment" }));
    await fill(user, screen.getByLabelText("Model 2"), "gpt-4o-mini");
    await user.click(screen.getByRole("button", { name: "Save Azure configuration" }));
    expect(screen.getByText("Each row needs both a model and a deployment name.")).toBeInTheDocument();
    expect(api.callsTo(PUT)).toHaveLength(0);
    await user.click(screen.getByRole("button", { name: "Remove deployment 2" }));
    await user.clear(screen.getByLabelText("Endpoint"));
    await fill(user, screen.getByLabelText("Endpoint"), "https://evil.example.com");
    await user.click(screen.getByRole("button", { name: "Save Azure configuration" }));
    await waitFor(() =>
      expect(screen.getByLabelText("Endpoint")).toHaveAccessibleDescription(
        "endpoint: the host must end with one of .openai.azure.com",
      ),
    );
  });

  it("is read-only below admin", async () => {
    mockApi({ ...CONFIGURED, [GET]: AZURE });
    renderWithProviders(<AzureSection orgId="o1" admin={false} />, { route: ROUTE });
    expect(await screen.findByText("https://acme.openai.azure.com")).toBeInTheDocument();
    expect(screen.getByRole("rowheader", { name: "gpt-4o" }).closest("tr")).toHaveTextContent("acme-gpt4o");
    expect(screen.queryByRole("button")).not.toBeInTheDocument();
    expect(screen.queryByRole("textbox")).not.toBeInTheDocument();
  });

  it("tells non-admins when it is not configured", async () => {
    mockApi({ ...NOT_SET });
    renderWithProviders(<AzureSection orgId="o1" admin={false} />, { route: ROUTE });
    expect(await screen.findByText(/not configured for this organisation yet\.\s*An admin can set it up/)).toBeInTheDocument();
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
  });

  it("shows other errors", async () => {
    mockApi({ ...CONFIGURED, [GET]: apiError(503, "unavailable", "the database is unavailable") });
    renderWithProviders(<AzureSection orgId="o1" admin />, { route: ROUTE });
    expect(await screen.findByRole("alert")).toHaveTextContent("the database is unavailable");
  });
});
