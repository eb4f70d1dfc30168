import { screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { makeRequestLog } from "../test/fixtures";
import { apiError, mockApi } from "../test/mockApi";
import { currentLocation, renderWithProviders } from "../test/render";
import FailuresPage from "./FailuresPage";

const FAILURES = "GET /api/orgs/o1/failures";
const ROUTE = "/orgs/o1/failures";

describe("FailuresPage", () => {
  it("lists failures with their error category and source", async () => {
    mockApi({
      [FAILURES]: {
        failures: [
          makeRequestLog({ status_code: 429, error_category: "rate_limited", error_source: "provider" }),
          makeRequestLog({ status_code: 0, error_category: "timeout", error_source: "proxy" }),
        ],
        next_cursor: null,
      },
    });
    renderWithProviders(<FailuresPage />, { route: ROUTE });
    expect(screen.getByRole("heading", { level: 1, name: "Failures" })).toBeInTheDocument();
    const table = await screen.findByRole("table");
    expect(within(table).getByRole("columnheader", { name: "Error category" })).toBeInTheDocument();
    expect(within(table).getByRole("columnheader", { name: "Source" })).toBeInTheDocument();
    expect(within(table).getByText("rate_limited")).toBeInTheDocument();
    expect(within(table).getByText("no response")).toBeInTheDocument();
    expect(within(table).getByText("proxy")).toBeInTheDocument();
  });

  it("has no status filter and sends the others", async () => {
    const api = mockApi({ [FAILURES]: { failures: [], next_cursor: null } });
    const { user } = renderWithProviders(<FailuresPage />, { route: `${ROUTE}?status=5xx` });
    expect(await screen.findByRole("heading", { name: "No failures found" })).toBeInTheDocument();
    expect(screen.queryByLabelText("Status")).not.toBeInTheDocument();
    expect(api.calls[0]!.query.has("status")).toBe(false);
    await user.type(screen.getByLabelText("Feature"), "chat");
    await user.click(screen.getByRole("button", { name: "Apply filters" }));
    expect(currentLocation()).toBe(`${ROUTE}?feature=chat`);
  });

  it("shows errors from the API", async () => {
    mockApi({ [FAILURES]: apiError(400, "invalid_request", "since must be before until", "since") });
    renderWithProviders(<FailuresPage />, { route: ROUTE });
    expect(await screen.findByRole("alert")).toHaveTextContent("since must be before until");
  });
});
