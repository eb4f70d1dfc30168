import { screen, waitFor } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { apiError, mockApi } from "../../test/mockApi";
import { renderWithProviders } from "../../test/render";
import RateLimitsSection from "./RateLimitsSection";
import { ORG, SETTINGS } from "./testData";
import { fill } from "./testUtils";


const ROUTE = "/orgs/o1/settings";

describe("RateLimitsSection", () => {
  it("shows non-operators the limits the operator set, read-only", async () => {
    mockApi({
      "GET /api/orgs/o1/settings": { ...SETTINGS, rate_limit_rpm: 1200, max_concurrent_streams: null },
    });
    renderWithProviders(<RateLimitsSection orgId="o1" operator={false} />, { route: ROUTE });
    expect(await screen.findByText("1,200")).toBeInTheDocument();
    expect(screen.getByText("unlimited")).toBeInTheDocument();
    expect(screen.getByText(/Set by your Lectr operator/)).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Save limits" })).not.toBeInTheDocument();
    expect(screen.queryByRole("spinbutton")).not.toBeInTheDocument();
  });

  it("lets operators change them (empty is unlimited)", async () => {
    const api = mockApi({
      "GET /api/orgs": { orgs: [{ ...ORG, id: "other" }, ORG] },
      "PATCH /api/orgs/o1": (req) => ({ ...ORG, ...(req.body as object), proxies: null }),
    });
    const { user } = renderWithProviders(<RateLimitsSection orgId="o1" operator />, { route: ROUTE });
    const rpm = await screen.findByLabelText("Requests per minute");
    const streams = screen.getByLabelText("Max concurrent streams");
    expect(rpm).toHaveValue(600);
    expect(streams).toHaveValue(null);
    await user.clear(rpm);
    await fill(user, streams, "20");
    await user.click(screen.getByRole("button", { name: "Save limits" }));
    await waitFor(() => expect(api.callsTo("PATCH /api/orgs/o1")).toHaveLength(1));
    expect(api.callsTo("PATCH /api/orgs/o1")[0]?.body).toEqual({
      rate_limit_rpm: null,
      max_concurrent_streams: 20,
    });
    expect(await screen.findByText(/Limits saved: unlimited requests per minute, 20 concurrent streams/)).toBeInTheDocument();
  });

  it("checks the numbers and shows the API's errors", async () => {
    const api = mockApi({
      "GET /api/orgs": { orgs: [ORG] },
      "PATCH /api/orgs/o1": apiError(400, "invalid_request", "rate_limit_rpm: Input should be less than or equal to 2147483647", "rate_limit_rpm"),
    });
    const { user } = renderWithProviders(<RateLimitsSection orgId="o1" operator />, { route: ROUTE });
    const rpm = await screen.findByLabelText("Requests per minute");
    await user.clear(rpm);
    await fill(user, rpm, "0");
    await user.click(screen.getByRole("button", { name: "Save limits" }));
    expect(rpm).toHaveAccessibleDescription(/above 0/);
    expect(api.callsTo("PATCH /api/orgs/o1")).toHaveLength(0);
    await user.clear(rpm);
    await fill(user, rpm, "99999999999");
    await user.click(screen.getByRole("button", { name: "Save limits" }));
    await waitFor(() => expect(rpm).toHaveAccessibleDescription(/less than or equal to/));
  });

  it("shows loading errors", async () => {
    mockApi({ "GET /api/orgs": apiError(403, "forbidden", "operators only") });
    renderWithProviders(<RateLimitsSection orgId="o1" operator />, { route: ROUTE });
    expect(await screen.findByRole("alert")).toHaveTextContent("operators only");
  });
});
