// API keys: list (prefix, name, created, revoked), create (the raw key shown once, with
// Copy), revoke with a confirmation.
import { useId, useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { apiFetch } from "../../api/client";
import type { Schemas } from "../../api/types";
import { ConfirmButton, EmptyState, ErrorState, Loading } from "../../components";
import { formatTime } from "../../format";
import { FieldError, FormError, emptyToNull, errorMessage, fieldErrorFor } from "./shared";
import f from "./forms.module.css";

type Key = Schemas["Key"];
type KeyCreated = Schemas["KeyCreated"];

/** The new key, shown once: Copy puts it on the clipboard; Done forgets it. */
function NewKeyPanel(props: { created: KeyCreated; onDone: () => void }) {
  const titleId = useId();
  const [copy, setCopy] = useState<"idle" | "copied" | "failed">("idle");
  async function onCopy() {
    try {
      await navigator.clipboard.writeText(props.created.key);
      setCopy("copied");
    } catch {
      setCopy("failed");
    }
  }
  return (
    <div className={`card ${f.newKey}`} role="dialog" aria-modal="false" aria-labelledby={titleId}>
      <h3 id={titleId}>New key{props.created.name ? `: ${props.created.name}` : ""}</h3>
      <p className="notice notice-warning">
        Copy this key now: it will not be shown again. Lectr stores only a keyed hash of it.
      </p>
      <div className={f.secretRow}>
        <code className={f.secret} data-testid="new-key">
          {props.created.key}
        </code>
        <button type="button" className="button button-primary" onClick={() => void onCopy()}>
          Copy
        </button>
      </div>
      <p aria-live="polite" className="muted">
        {copy === "copied" && "Copied to the clipboard."}
        {copy === "failed" && "Could not copy: select the key and copy it by hand."}
      </p>
      {props.created.proxies && <p className="muted">{props.created.proxies}</p>}
      <button type="button" className={`button ${f.alignStart}`} onClick={props.onDone}>
        Done, I have stored it
      </button>
    </div>
  );
}

export default function KeysSection(props: { orgId: string; admin: boolean }) {
  const { orgId, admin } = props;
  const queryClient = useQueryClient();
  const queryKey = ["org", orgId, "keys"];
  const nameId = useId();
  const keys = useQuery({
    queryKey,
    queryFn: ({ signal }) => apiFetch<Schemas["KeyList"]>(`/api/orgs/${orgId}/keys`, { signal }),
  });
  const [name, setName] = useState("");
  const [created, setCreated] = useState<KeyCreated | null>(null);

  const create = useMutation({
    mutationFn: (keyName: string | null) =>
      apiFetch<KeyCreated>(`/api/orgs/${orgId}/keys`, { method: "POST", body: { name: keyName } }),
    onSuccess: (key) => {
      setCreated(key);
      setName("");
    },
    onSettled: () => queryClient.invalidateQueries({ queryKey }),
  });

  const revoke = useMutation({
    mutationFn: (key: Key) =>
      apiFetch<Schemas["KeyRevoked"]>(`/api/orgs/${orgId}/keys/${key.id}`, { method: "DELETE" }),
    onSettled: () => queryClient.invalidateQueries({ queryKey }),
  });

  function onCreate(event: FormEvent) {
    event.preventDefault();
    setCreated(null);
    create.mutate(emptyToNull(name));
  }

  const list = keys.data?.keys ?? [];
  const nameError = fieldErrorFor(create.error, "name");

  return (
    <section className={`card ${f.section}`} aria-labelledby="settings-keys">
      <h2 id="settings-keys">Keys</h2>
      <p className="muted">
        Clients send a key in the <code>X-Lectr-Key</code> header. To rotate one without
        downtime: create a key, deploy it, then revoke the old one.
      </p>

      {admin && (
        <form className={f.inlineForm} onSubmit={onCreate} noValidate>
          <div className="field">
            <label htmlFor={nameId}>Key name (optional)</label>
            <input
              id={nameId}
              type="text"
              value={name}
              maxLength={200}
              placeholder="e.g. production"
              aria-invalid={nameError ? true : undefined}
              aria-describedby={nameError ? `${nameId}-error` : undefined}
              onChange={(e) => setName(e.target.value)}
            />
            <FieldError id={`${nameId}-error`} message={nameError} />
          </div>
          <button type="submit" className="button button-primary" disabled={create.isPending}>
            Create key
          </button>
        </form>
      )}
      {admin && <FormError error={create.error} fields={["name"]} />}
      {created && <NewKeyPanel created={created} onDone={() => setCreated(null)} />}
      {revoke.isError && (
        <p className={f.formError} role="alert">
          Not revoked: {errorMessage(revoke.error)}
        </p>
      )}

      {keys.isPending ? (
        <Loading label="Loading keys" />
      ) : keys.isError ? (
        <ErrorState error={keys.error} onRetry={() => void keys.refetch()} />
      ) : list.length === 0 ? (
        <EmptyState title="No keys">
          <p>{admin ? "Create a key for your clients to send." : "An admin can create one."}</p>
        </EmptyState>
      ) : (
        <div className="table-wrap">
          <table className={`table ${f.dataTable}`}>
            <caption className="sr-only">API keys</caption>
            <thead>
              <tr>
                <th scope="col">Prefix</th>
                <th scope="col">Name</th>
                <th scope="col">Created</th>
                <th scope="col">Revoked</th>
                {admin && (
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                )}
              </tr>
            </thead>
            <tbody>
              {list.map((key) => (
                <tr key={key.id} className={key.revoked_at ? f.disabledRow : undefined}>
                  <th scope="row">
                    <code>{key.display_prefix}…</code>
                  </th>
                  <td>{key.name ?? <span className="muted">—</span>}</td>
                  <td>{formatTime(key.created_at)}</td>
                  <td>
                    {key.revoked_at ? (
                      formatTime(key.revoked_at)
                    ) : (
                      <span className="badge badge-good">active</span>
                    )}
                  </td>
                  {admin && (
                    <td>
                      <div className={f.rowActions}>
                        {!key.revoked_at && (
                          <ConfirmButton
                            label="Revoke"
                            question={`Revoke key ${key.display_prefix}…? Clients using it stop working within a second.`}
                            confirmLabel="Yes, revoke"
                            pending={revoke.isPending && revoke.variables?.id === key.id}
                            onConfirm={() => revoke.mutate(key)}
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
    </section>
  );
}
