import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { apiError, mockApi, pending, reply } from "../../test/mockApi";
import { renderWithProviders } from "../../test/render";
import MembersSection from "./MembersSection";
import { INVITES, MEMBERS } from "./testData";
import { fill } from "./testUtils";


const ROUTE = "/orgs/o1/settings";
const MEMBERS_GET = "GET /api/orgs/o1/members";
const INVITES_GET = "GET /api/orgs/o1/invites";

function rowOf(email: string): HTMLElement {
  return screen.getByRole("rowheader", { name: email }).closest("tr") as HTMLElement;
}

function optionsOf(select: HTMLElement): string[] {
  return within(select)
    .getAllByRole("option")
    .map((o) => o.textContent ?? "");
}

describe("MembersSection", () => {
  it("shows loading, then members and invites", async () => {
    mockApi({ [MEMBERS_GET]: () => pending(), [INVITES_GET]: () => pending() });
    renderWithProviders(<MembersSection orgId="o1" admin owner={false} />, { route: ROUTE });
    expect(await screen.findAllByRole("status")).toHaveLength(2);
  });

  it("lists members (signed in or not) and pending invites (expired marked)", async () => {
    mockApi({ [MEMBERS_GET]: { members: MEMBERS }, [INVITES_GET]: { invites: INVITES } });
    renderWithProviders(<MembersSection orgId="o1" admin owner />, { route: ROUTE });
    await screen.findByRole("rowheader", { name: "olga@example.com" });
    expect(rowOf("olga@example.com")).toHaveTextContent("yes");
    expect(rowOf("vera@example.com")).toHaveTextContent("not yet");
    await screen.findByRole("rowheader", { name: "new@example.com" });
    expect(rowOf("late@example.com")).toHaveTextContent("expired");
    expect(rowOf("new@example.com")).not.toHaveTextContent("expired");
  });

  it("shows empty states", async () => {
    mockApi({ [MEMBERS_GET]: { members: [] }, [INVITES_GET]: { invites: [] } });
    renderWithProviders(<MembersSection orgId="o1" admin owner />, { route: ROUTE });
    expect(await screen.findByText("No members yet")).toBeInTheDocument();
    expect(await screen.findByText("No pending invites")).toBeInTheDocument();
  });

  it("shows errors", async () => {
    mockApi({
      [MEMBERS_GET]: apiError(503, "unavailable", "members unavailable"),
      [INVITES_GET]: apiError(503, "unavailable", "invites unavailable"),
    });
    renderWithProviders(<MembersSection orgId="o1" admin owner />, { route: ROUTE });
    await waitFor(() => expect(screen.getAllByRole("alert")).toHaveLength(2));
    expect(screen.getByText("members unavailable")).toBeInTheDocument();
    expect(screen.getByText("invites unavailable")).toBeInTheDocument();
  });

  it("lets an admin change roles below owner, never an owner's", async () => {
    let members = MEMBERS;
    const api = mockApi({
      [MEMBERS_GET]: () => ({ members }),
      [INVITES_GET]: { invites: [] },
      "PATCH /api/orgs/o1/members/m3": (req) => {
        members = members.map((m) => (m.id === "m3" ? { ...m, ...(req.body as object) } : m));
        return members[2];
      },
    });
    const { user } = renderWithProviders(<MembersSection orgId="o1" admin owner={false} />, { route: ROUTE });
    await screen.findByRole("rowheader", { name: "olga@example.com" });
    // the owner's row is read-only for an admin
    expect(within(rowOf("olga@example.com")).queryByRole("combobox")).not.toBeInTheDocument();
    expect(within(rowOf("olga@example.com")).queryByRole("button", { name: "Remove" })).not.toBeInTheDocument();
    const select = screen.getByRole("combobox", { name: "Role of vera@example.com" });
    expect(optionsOf(select)).toEqual(["viewer", "member", "admin"]);
    await user.selectOptions(select, "member");
    await waitFor(() => expect(api.callsTo("PATCH /api/orgs/o1/members/m3")).toHaveLength(1));
    expect(api.callsTo("PATCH /api/orgs/o1/members/m3")[0]?.body).toEqual({ role: "member" });
    await waitFor(() =>
      expect(screen.getByRole("combobox", { name: "Role of vera@example.com" })).toHaveValue("member"),
    );
  });

  it("offers owners the owner role, and shows the API's refusal", async () => {
    mockApi({
      [MEMBERS_GET]: { members: MEMBERS },
      [INVITES_GET]: { invites: [] },
      "PATCH /api/orgs/o1/members/m1": apiError(409, "conflict", "this is the organisation's last owner: make another owner first"),
    });
    const { user } = renderWithProviders(<MembersSection orgId="o1" admin owner />, { route: ROUTE });
    await screen.findByRole("rowheader", { name: "olga@example.com" });
    const select = screen.getByRole("combobox", { name: "Role of olga@example.com" });
    expect(optionsOf(select)).toEqual(["viewer", "member", "admin", "owner"]);
    await user.selectOptions(select, "admin");
    expect(await screen.findByRole("alert")).toHaveTextContent(
      "olga@example.com is still owner: this is the organisation's last owner: make another owner first",
    );
    await waitFor(() => expect(screen.getByRole("combobox", { name: "Role of olga@example.com" })).toHaveValue("owner"));
  });

  it("removes a member after a confirmation", async () => {
    let members = MEMBERS;
    const api = mockApi({
      [MEMBERS_GET]: () => ({ members }),
      [INVITES_GET]: { invites: [] },
      "DELETE /api/orgs/o1/members/m3": () => {
        members = members.filter((m) => m.id !== "m3");
        return MEMBERS[2];
      },
    });
    const { user } = renderWithProviders(<MembersSection orgId="o1" admin owner={false} />, { route: ROUTE });
    await screen.findByRole("rowheader", { name: "vera@example.com" });
    await user.click(within(rowOf("vera@example.com")).getByRole("button", { name: "Remove" }));
    await user.click(within(rowOf("vera@example.com")).getByRole("button", { name: "Yes, remove" }));
    await waitFor(() => expect(api.callsTo("DELETE /api/orgs/o1/members/m3")).toHaveLength(1));
    await waitFor(() => expect(screen.queryByRole("rowheader", { name: "vera@example.com" })).not.toBeInTheDocument());
  });

  it("withdraws an invite after a confirmation", async () => {
    let invites = INVITES;
    const api = mockApi({
      [MEMBERS_GET]: { members: MEMBERS },
      [INVITES_GET]: () => ({ invites }),
      "DELETE /api/orgs/o1/invites/i1": () => {
        invites = invites.filter((i) => i.id !== "i1");
        return INVITES[0];
      },
    });
    const { user } = renderWithProviders(<MembersSection orgId="o1" admin owner={false} />, { route: ROUTE });
    await screen.findByRole("rowheader", { name: "new@example.com" });
    await user.click(within(rowOf("new@example.com")).getByRole("button", { name: "Withdraw" }));
    await user.click(within(rowOf("new@example.com")).getByRole("button", { name: "Yes, withdraw" }));
    await waitFor(() => expect(api.callsTo("DELETE /api/orgs/o1/invites/i1")).toHaveLength(1));
    await waitFor(() => expect(screen.queryByRole("rowheader", { name: "new@example.com" })).not.toBeInTheDocument());
  });

  it("invites by email and role", async () => {
    const api = mockApi({
      [MEMBERS_GET]: { members: MEMBERS },
      [INVITES_GET]: { invites: [] },
      "POST /api/orgs/o1/invites": reply(201, {
        ...INVITES[0],
        id: "i9",
        email: "sam@example.com",
        role: "admin",
        replaced: 1,
      }),
    });
    const { user } = renderWithProviders(<MembersSection orgId="o1" admin owner={false} />, { route: ROUTE });
    await screen.findByText("No pending invites");
    const form = screen.getByRole("form", { name: "Invite a member" });
    expect(optionsOf(within(form).getByLabelText("Role"))).toEqual(["viewer", "member", "admin"]);
    await fill(user, within(form).getByLabelText("Email"), "sam@example.com");
    await user.selectOptions(within(form).getByLabelText("Role"), "admin");
    await user.click(within(form).getByRole("button", { name: "Invite" }));
    expect(await within(form).findByRole("status")).toHaveTextContent(
      /Invite sent to sam@example.com as admin; it expires .*It replaces 1 pending invite\./,
    );
    expect(api.callsTo("POST /api/orgs/o1/invites")[0]?.body).toEqual({ email: "sam@example.com", role: "admin" });
    expect(within(form).getByLabelText("Email")).toHaveValue("");
    await waitFor(() => expect(api.callsTo(INVITES_GET).length).toBeGreaterThanOrEqual(2));
  });

  it("says clearly when SMTP is not configured", async () => {
    mockApi({
      [MEMBERS_GET]: { members: MEMBERS },
      [INVITES_GET]: { invites: [] },
      "POST /api/orgs/o1/invites": apiError(409, "conflict", "invites go out by email, and LECTR_SMTP_URL is not set"),
    });
    const { user } = renderWithProviders(<MembersSection orgId="o1" admin owner />, { route: ROUTE });
    await screen.findByText("No pending invites");
    const form = screen.getByRole("form", { name: "Invite a member" });
    await fill(user, within(form).getByLabelText("Email"), "sam@example.com");
    await user.click(within(form).getByRole("button", { name: "Invite" }));
    const alert = await within(form).findByRole("alert");
    expect(alert).toHaveTextContent("SMTP not configured");
    expect(alert).toHaveTextContent("LECTR_SMTP_URL");
    // what was typed stays, to try again later
    expect(within(form).getByLabelText("Email")).toHaveValue("sam@example.com");
  });

  it("shows other conflicts with the API's message, and a bad email next to the field", async () => {
    const api = mockApi({
      [MEMBERS_GET]: { members: MEMBERS },
      [INVITES_GET]: { invites: [] },
      "POST /api/orgs/o1/invites": apiError(409, "conflict", "adam@example.com is already a member"),
    });
    const { user } = renderWithProviders(<MembersSection orgId="o1" admin owner />, { route: ROUTE });
    await screen.findByText("No pending invites");
    const form = screen.getByRole("form", { name: "Invite a member" });
    await fill(user, within(form).getByLabelText("Email"), "adam@example.com");
    await user.click(within(form).getByRole("button", { name: "Invite" }));
    expect(await within(form).findByRole("alert")).toHaveTextContent("adam@example.com is already a member");
    expect(within(form).queryByText(/SMTP/)).not.toBeInTheDocument();

    api.set({ "POST /api/orgs/o1/invites": apiError(400, "invalid_request", "email: not an email address", "email") });
    await user.clear(within(form).getByLabelText("Email"));
    await fill(user, within(form).getByLabelText("Email"), "nope");
    await user.click(within(form).getByRole("button", { name: "Invite" }));
    await waitFor(() =>
      expect(within(form).getByLabelText("Email")).toHaveAccessibleDescription("email: not an email address"),
    );
  });

  it("shows non-admins the members only", async () => {
    const api = mockApi({ [MEMBERS_GET]: { members: MEMBERS } });
    renderWithProviders(<MembersSection orgId="o1" admin={false} owner={false} />, { route: ROUTE });
    await screen.findByRole("rowheader", { name: "olga@example.com" });
    expect(screen.queryByRole("combobox")).not.toBeInTheDocument();
    expect(screen.queryByRole("button")).not.toBeInTheDocument();
    expect(screen.queryByRole("form")).not.toBeInTheDocument();
    expect(api.callsTo(INVITES_GET)).toHaveLength(0);
  });
});
