// Members (role change, remove) and invites (list, withdraw, invite by email).
import { useId, useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { ApiError, apiFetch } from "../../api/client";
import type { Schemas } from "../../api/types";
import { ConfirmButton, EmptyState, ErrorState, Loading } from "../../components";
import { formatRelative, formatTime } from "../../format";
import { FieldError, errorMessage, fieldErrorFor } from "./shared";
import f from "./forms.module.css";

type Member = Schemas["Member"];
type Invite = Schemas["Invite"];
type Role = Member["role"];

const ROLES: readonly Role[] = ["viewer", "member", "admin", "owner"];

const ROLE_HELP: Record<Role, string> = {
  viewer: "reads",
  member: "reads and dismisses",
  admin: "manages rules, keys, settings and members",
  owner: "admin, and manages owners",
};

/** The 409 of POST /invites when the API has no SMTP server configured. */
export function isSmtpMissing(error: unknown): boolean {
  return error instanceof ApiError && error.status === 409 && /SMTP/i.test(error.message);
}

function InviteForm(props: { orgId: string; owner: boolean }) {
  const { orgId, owner } = props;
  const queryClient = useQueryClient();
  const id = useId();
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<Role>("member");
  const invite = useMutation({
    mutationFn: (body: Schemas["InviteCreate"]) =>
      apiFetch<Schemas["InviteSent"]>(`/api/orgs/${orgId}/invites`, { method: "POST", body }),
    onSuccess: () => setEmail(""),
    onSettled: () => queryClient.invalidateQueries({ queryKey: ["org", orgId, "invites"] }),
  });

  function onSubmit(event: FormEvent) {
    event.preventDefault();
    invite.mutate({ email: email.trim(), role });
  }

  const emailError = fieldErrorFor(invite.error, "email");
  const roleError = fieldErrorFor(invite.error, "role");
  const error = invite.error;
  const sent = invite.data;

  return (
    <form className={f.inlineForm} onSubmit={onSubmit} noValidate aria-label="Invite a member">
      <div className="field">
        <label htmlFor={`${id}-email`}>Email</label>
        <input
          id={`${id}-email`}
          type="email"
          autoComplete="off"
          value={email}
          required
          placeholder="name@example.com"
          aria-invalid={emailError ? true : undefined}
          aria-describedby={emailError ? `${id}-email-error` : undefined}
          onChange={(e) => setEmail(e.target.value)}
        />
        <FieldError id={`${id}-email-error`} message={emailError} />
      </div>
      <div className="field">
        <label htmlFor={`${id}-role`}>Role</label>
        <select
          id={`${id}-role`}
          value={role}
          aria-invalid={roleError ? true : undefined}
          onChange={(e) => setRole(e.target.value as Role)}
        >
          {ROLES.filter((r) => owner || r !== "owner").map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
        <FieldError id={`${id}-role-error`} message={roleError} />
      </div>
      <button type="submit" className="button button-primary" disabled={invite.isPending}>
        {invite.isPending ? "Sending…" : "Invite"}
      </button>
      <div>
        {error && isSmtpMissing(error) ? (
          <div className={f.formError} role="alert">
            <strong>SMTP not configured:</strong> invites are sent by email, and this Lectr
            has no mail server. Ask your Lectr operator to set <code>LECTR_SMTP_URL</code>,
            or add the member with <code>lectr member add</code>.
          </div>
        ) : error && !emailError && !roleError ? (
          <p className={f.formError} role="alert">
            {errorMessage(error)}
          </p>
        ) : null}
        {sent && !invite.isPending && (
          <p className={f.success} role="status">
            Invite sent to {sent.email} as {sent.role}; it expires {formatTime(sent.expires_at)}.
            {sent.replaced > 0 && ` It replaces ${sent.replaced} pending invite${sent.replaced === 1 ? "" : "s"}.`}
          </p>
        )}
      </div>
    </form>
  );
}

function InvitesList(props: { orgId: string }) {
  const { orgId } = props;
  const queryClient = useQueryClient();
  const queryKey = ["org", orgId, "invites"];
  const invites = useQuery({
    queryKey,
    queryFn: ({ signal }) => apiFetch<Schemas["InviteList"]>(`/api/orgs/${orgId}/invites`, { signal }),
  });
  const withdraw = useMutation({
    mutationFn: (invite: Invite) =>
      apiFetch<Invite>(`/api/orgs/${orgId}/invites/${invite.id}`, { method: "DELETE" }),
    onSettled: () => queryClient.invalidateQueries({ queryKey }),
  });
  if (invites.isPending) return <Loading label="Loading invites" />;
  if (invites.isError) return <ErrorState error={invites.error} onRetry={() => void invites.refetch()} />;
  const list = invites.data.invites;
  const now = Date.now();
  return (
    <>
      {withdraw.isError && (
        <p className={f.formError} role="alert">
          Not withdrawn: {errorMessage(withdraw.error)}
        </p>
      )}
      {list.length === 0 ? (
        <EmptyState title="No pending invites" />
      ) : (
        <div className="table-wrap">
          <table className={`table ${f.dataTable}`}>
            <caption className="sr-only">Pending invites</caption>
            <thead>
              <tr>
                <th scope="col">Email</th>
                <th scope="col">Role</th>
                <th scope="col">Sent</th>
                <th scope="col">Expires</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.map((invite) => {
                const expired = Date.parse(invite.expires_at) <= now;
                return (
                  <tr key={invite.id} className={expired ? f.disabledRow : undefined}>
                    <th scope="row">{invite.email}</th>
                    <td>{invite.role}</td>
                    <td title={formatTime(invite.created_at)}>{formatRelative(invite.created_at)}</td>
                    <td>
                      {expired ? (
                        <span className="badge badge-neutral">expired</span>
                      ) : (
                        formatTime(invite.expires_at)
                      )}
                    </td>
                    <td>
                      <div className={f.rowActions}>
                        <ConfirmButton
                          label="Withdraw"
                          question={`Withdraw the invite to ${invite.email}?`}
                          confirmLabel="Yes, withdraw"
                          pending={withdraw.isPending && withdraw.variables?.id === invite.id}
                          onConfirm={() => withdraw.mutate(invite)}
                        />
                      </div>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

export default function MembersSection(props: { orgId: string; admin: boolean; owner: boolean }) {
  const { orgId, admin, owner } = props;
  const queryClient = useQueryClient();
  const queryKey = ["org", orgId, "members"];
  const members = useQuery({
    queryKey,
    queryFn: ({ signal }) => apiFetch<Schemas["MemberList"]>(`/api/orgs/${orgId}/members`, { signal }),
  });
  const [problem, setProblem] = useState<string | null>(null);
  const changeRole = useMutation({
    mutationFn: (v: { member: Member; role: Role }) =>
      apiFetch<Member>(`/api/orgs/${orgId}/members/${v.member.id}`, {
        method: "PATCH",
        body: { role: v.role },
      }),
    onMutate: () => setProblem(null),
    onError: (error, v) => setProblem(`${v.member.email} is still ${v.member.role}: ${errorMessage(error)}`),
    onSettled: () => queryClient.invalidateQueries({ queryKey }),
  });
  const remove = useMutation({
    mutationFn: (member: Member) =>
      apiFetch<Member>(`/api/orgs/${orgId}/members/${member.id}`, { method: "DELETE" }),
    onMutate: () => setProblem(null),
    onError: (error, member) => setProblem(`${member.email} was not removed: ${errorMessage(error)}`),
    onSettled: () => queryClient.invalidateQueries({ queryKey }),
  });

  // Only an owner changes or removes an owner, or makes someone one.
  const mayManage = (member: Member) => admin && (owner || member.role !== "owner");
  const list = members.data?.members ?? [];

  return (
    <section className={`card ${f.section}`} aria-labelledby="settings-members">
      <h2 id="settings-members">Members and invites</h2>
      <p className="muted">
        Roles: {ROLES.map((r) => `${r} ${ROLE_HELP[r]}`).join("; ")}.
      </p>
      {problem && (
        <p className={f.formError} role="alert">
          {problem}
        </p>
      )}
      <h3>Members</h3>
      {members.isPending ? (
        <Loading label="Loading members" />
      ) : members.isError ? (
        <ErrorState error={members.error} onRetry={() => void members.refetch()} />
      ) : list.length === 0 ? (
        <EmptyState title="No members yet">
          <p>Invite someone below, or an operator can run <code>lectr member add</code>.</p>
        </EmptyState>
      ) : (
        <div className="table-wrap">
          <table className={`table ${f.dataTable}`}>
            <caption className="sr-only">Members</caption>
            <thead>
              <tr>
                <th scope="col">Email</th>
                <th scope="col">Role</th>
                <th scope="col">Signed in</th>
                <th scope="col">Added</th>
                {admin && (
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                )}
              </tr>
            </thead>
            <tbody>
              {list.map((member) => (
                <tr key={member.id}>
                  <th scope="row">{member.email}</th>
                  <td>
                    {mayManage(member) ? (
                      <select
                        aria-label={`Role of ${member.email}`}
                        value={member.role}
                        disabled={changeRole.isPending && changeRole.variables?.member.id === member.id}
                        onChange={(e) => changeRole.mutate({ member, role: e.target.value as Role })}
                      >
                        {ROLES.filter((r) => owner || r !== "owner").map((r) => (
                          <option key={r} value={r}>
                            {r}
                          </option>
                        ))}
                      </select>
                    ) : (
                      member.role
                    )}
                  </td>
                  <td>{member.oidc_subject ? "yes" : <span className="muted">not yet</span>}</td>
                  <td>{formatTime(member.created_at)}</td>
                  {admin && (
                    <td>
                      <div className={f.rowActions}>
                        {mayManage(member) && (
                          <ConfirmButton
                            label="Remove"
                            question={`Remove ${member.email} from this organisation?`}
                            confirmLabel="Yes, remove"
                            pending={remove.isPending && remove.variables?.id === member.id}
                            onConfirm={() => remove.mutate(member)}
                          />
                        )}
                      </div>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      {admin && (
        <>
          <h3>Invites</h3>
          <InvitesList orgId={orgId} />
          <h3>Invite someone</h3>
          <p className="muted">
            They get a single-use link by email and join with the role you choose once they
            sign in.
          </p>
          <InviteForm orgId={orgId} owner={owner} />
        </>
      )}
    </section>
  );
}
