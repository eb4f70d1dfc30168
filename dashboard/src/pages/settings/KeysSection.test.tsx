import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { apiError, mockApi, reply } from "../../test/mockApi";
import { renderWithProviders } from "../../test/render";
import KeysSection from "./KeysSection";
import { KEYS } from "./testData";
import { fill } from "./testUtils";


const ROUTE = "/orgs/o1/settings";
const LIST = "GET /api/orgs/o1/keys";

function rowOf(prefix: string): HTMLElement {
  return screen.getByRole("rowheader", { name: `${prefix}…` }).closest("tr") as HTMLElement;
}

describe("KeysSection", () => {
  it("lists keys with prefix, name, created and revoked", async () => {
    mockApi({ [LIST]: { keys: KEYS } });
    renderWithProviders(<KeysSection orgId="o1" admin />, { route: ROUTE });
    await screen.findByRole("rowheader", { name: "lc_key_AbC1…" });
    expect(rowOf("lc_key_AbC1")).toHaveTextContent("production");
    expect(rowOf("lc_key_AbC1")).toHaveTextContent("active");
    expect(within(rowOf("lc_key_AbC1")).getByRole("button", { name: "Revoke" })).toBeInTheDocument();
    // a revoked key shows when, and cannot be revoked again
    expect(rowOf("lc_key_Old9")).not.toHaveTextContent("active");
    expect(within(rowOf("lc_key_Old9")).queryByRole("button", { name: "Revoke" })).not.toBeInTheDocument();
  });

  it("shows an empty state", async () => {
    mockApi({ [LIST]: { keys: [] } });
    renderWithProviders(<KeysSection orgId="o1" admin />, { route: ROUTE });
    expect(await screen.findByText("No keys")).toBeInTheDocument();
  });

  it("shows a new key once, with Copy and a warning", async () => {
    const api = mockApi({
      [LIST]: { keys: KEYS },
      "POST /api/orgs/o1/keys": reply(201, {
        id: "k3",
        display_prefix: "lc_key_New3",
        name: "staging",
        created_at: "2026-12-02T15:00:00Z",
        revoked_at: null,
        key: "lc_key_New3_the-whole-secret-value",
        proxies: null,
      }),
    });
    const { user } = renderWithProviders(<KeysSection orgId="o1" admin />, { route: ROUTE });
    await screen.findByRole("rowheader", { name: "lc_key_AbC1…" });
    await fill(user, screen.getByLabelText("Key name (optional)"), "staging");
    await user.click(screen.getByRole("button", { name: "Create key" }));

    const dialog = await screen.findByRole("dialog", { name: /New key: staging/ });
    expect(api.callsTo("POST /api/orgs/o1/keys")[0]?.body).toEqual({ name: "staging" });
    expect(within(dialog).getByText("lc_key_New3_the-whole-secret-value")).toBeInTheDocument();
    expect(dialog).toHaveTextContent("it will not be shown again");
    await user.click(within(dialog).getByRole("button", { name: "Copy" }));
    expect(await within(dialog).findByText("Copied to the clipboard.")).toBeInTheDocument();
    expect(await navigator.clipboard.readText()).toBe("lc_key_New3_the-whole-secret-value");
    // the name field is cleared for the next key
    expect(screen.getByLabelText("Key name (optional)")).toHaveValue("");
    await waitFor(() => expect(api.callsTo(LIST).length).toBeGreaterThanOrEqual(2));

    await user.click(within(dialog).getByRole("button", { name: /Done/ }));
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
    expect(screen.queryByText("lc_key_New3_the-whole-secret-value")).not.toBeInTheDocument();
  });

  it("creates a key without a name as null", async () => {
    const api = mockApi({
      [LIST]: { keys: [] },
      "POST /api/orgs/o1/keys": reply(201, {
        id: "k3",
        display_prefix: "lc_key_New3",
        name: null,
        created_at: "2026-12-02T15:00:00Z",
        revoked_at: null,
        key: "lc_key_New3_secret",
        proxies: null,
      }),
    });
    const { user } = renderWithProviders(<KeysSection orgId="o1" admin />, { route: ROUTE });
    await screen.findByText("No keys");
    await user.click(screen.getByRole("button", { name: "Create key" }));
    expect(await screen.findByRole("dialog", { name: "New key" })).toBeInTheDocument();
    expect(api.callsTo("POST /api/orgs/o1/keys")[0]?.body).toEqual({ name: null });
  });

  it("shows a failed creation next to the name", async () => {
    mockApi({
      [LIST]: { keys: KEYS },
      "POST /api/orgs/o1/keys": apiError(400, "invalid_request", "name: String should have at most 200 characters", "name"),
    });
    const { user } = renderWithProviders(<KeysSection orgId="o1" admin />, { route: ROUTE });
    await screen.findByRole("rowheader", { name: "lc_key_AbC1…" });
    await fill(user, screen.getByLabelText("Key name (optional)"), "x");
    await user.click(screen.getByRole("button", { name: "Create key" }));
    await waitFor(() =>
      expect(screen.getByLabelText("Key name (optional)")).toHaveAccessibleDescription(
        "name: String should have at most 200 characters",
      ),
    );
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
  });

  it("revokes a key after a confirmation", async () => {
    let revoked = false;
    const api = mockApi({
      [LIST]: () => ({
        keys: revoked ? [{ ...KEYS[0], revoked_at: "2026-12-02T15:00:00Z" }, KEYS[1]] : KEYS,
      }),
      "DELETE /api/orgs/o1/keys/k1": () => {
        revoked = true;
        return { ...KEYS[0], revoked_at: "2026-12-02T15:00:00Z", proxies: null };
      },
    });
    const { user } = renderWithProviders(<KeysSection orgId="o1" admin />, { route: ROUTE });
    await screen.findByRole("rowheader", { name: "lc_key_AbC1…" });
    await user.click(within(rowOf("lc_key_AbC1")).getByRole("button", { name: "Revoke" }));
    expect(api.callsTo("DELETE /api/orgs/o1/keys/k1")).toHaveLength(0);
    expect(rowOf("lc_key_AbC1")).toHaveTextContent(/Clients using it stop working/);
    await user.click(within(rowOf("lc_key_AbC1")).getByRole("button", { name: "Yes, revoke" }));
    await waitFor(() => expect(api.callsTo("DELETE /api/orgs/o1/keys/k1")).toHaveLength(1));
    await waitFor(() => expect(rowOf("lc_key_AbC1")).not.toHaveTextContent("active"));
  });

  it("hides Create key and Revoke when not admin", async () => {
    mockApi({ [LIST]: { keys: KEYS } });
    renderWithProviders(<KeysSection orgId="o1" admin={false} />, { route: ROUTE });
    await screen.findByRole("rowheader", { name: "lc_key_AbC1…" });
    expect(screen.queryByRole("button", { name: "Create key" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Revoke" })).not.toBeInTheDocument();
    expect(screen.queryByLabelText("Key name (optional)")).not.toBeInTheDocument();
  });
});
