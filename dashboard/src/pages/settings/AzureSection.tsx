// The org's Azure OpenAI configuration: endpoint, api-version, model → deployment table.
import { useId, useRef, useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { apiFetch } from "../../api/client";
import type { Schemas } from "../../api/types";
import { ErrorState, Loading } from "../../components";
import { formatTime } from "../../format";
import { FieldError, FormError, fieldErrorFor } from "./shared";
import f from "./forms.module.css";

type AzureConfig = Schemas["AzureConfig"];
const FIELDS = ["endpoint", "api_version", "deployments"] as const;

interface Row {
  key: number;
  model: string;
  deployment: string;
}

/** The org's Azure configuration, or null when it has none: the settings say whether
 * there is one, so an unconfigured org never asks for it (GET …/providers/azure is 404
 * then). */
async function fetchAzure(
  orgId: string,
  configured: boolean,
  signal: AbortSignal,
): Promise<AzureConfig | null> {
  if (!configured) return null;
  return await apiFetch<AzureConfig>(`/api/orgs/${orgId}/providers/azure`, { signal });
}

function AzureForm(props: { orgId: string; config: AzureConfig | null }) {
  const { orgId, config } = props;
  const queryClient = useQueryClient();
  const id = useId();
  const nextKey = useRef(0);
  const makeRow = (model = "", deployment = ""): Row => ({ key: nextKey.current++, model, deployment });
  const [endpoint, setEndpoint] = useState(config?.endpoint ?? "");
  const [apiVersion, setApiVersion] = useState(config?.api_version ?? "");
  const [rows, setRows] = useState<Row[]>(() => {
    const entries = Object.entries(config?.deployments ?? {});
    return entries.length ? entries.map(([m, d]) => makeRow(m, d)) : [makeRow()];
  });
  const [localError, setLocalError] = useState<{ field: (typeof FIELDS)[number]; message: string } | null>(null);

  const save = useMutation({
    mutationFn: (body: Schemas["AzureConfigPut"]) =>
      apiFetch<Schemas["AzureConfigChanged"]>(`/api/orgs/${orgId}/providers/azure`, { method: "PUT", body }),
    onSuccess: (saved) => {
      const { proxies: _proxies, ...stored } = saved;
      void _proxies;
      queryClient.setQueryData<AzureConfig | null>(["org", orgId, "azure"], stored);
    },
  });

  function onSubmit(event: FormEvent) {
    event.preventDefault();
    const deployments: Record<string, string> = {};
    for (const row of rows) {
      const model = row.model.trim();
      const deployment = row.deployment.trim();
      if (!model && !deployment) continue;
      if (!model || !deployment) {
        setLocalError({ field: "deployments", message: "Each row needs both a model and a deployment name." });
        return;
      }
      if (model in deployments) {
        setLocalError({ field: "deployments", message: `${model} is listed twice.` });
        return;
      }
      deployments[model] = deployment;
    }
    if (!endpoint.trim()) {
      setLocalError({ field: "endpoint", message: "The endpoint is required, e.g. https://my-resource.openai.azure.com." });
      return;
    }
    if (!apiVersion.trim()) {
      setLocalError({ field: "api_version", message: "The api-version is required, e.g. 2024-10-21." });
      return;
    }
    setLocalError(null);
    save.mutate({ endpoint: endpoint.trim(), api_version: apiVersion.trim(), deployments });
  }

  const errorOf = (field: (typeof FIELDS)[number]) =>
    localError?.field === field ? localError.message : fieldErrorFor(save.error, field);

  const textField = (field: "endpoint" | "api_version", label: string, value: string, set: (v: string) => void, placeholder: string) => {
    const error = errorOf(field);
    return (
      <div className={field === "endpoint" ? `field ${f.wide}` : "field"}>
        <label htmlFor={`${id}-${field}`}>{label}</label>
        <input
          id={`${id}-${field}`}
          type={field === "endpoint" ? "url" : "text"}
          value={value}
          placeholder={placeholder}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? `${id}-${field}-error` : undefined}
          onChange={(e) => {
            set(e.target.value);
            if (localError?.field === field) setLocalError(null);
          }}
        />
        <FieldError id={`${id}-${field}-error`} message={error} />
      </div>
    );
  };

  const setRow = (key: number, patch: Partial<Row>) => {
    setRows((rs) => rs.map((r) => (r.key === key ? { ...r, ...patch } : r)));
    if (localError?.field === "deployments") setLocalError(null);
  };
  const deploymentsError = errorOf("deployments");

  return (
    <form onSubmit={onSubmit} noValidate>
      <div className={f.formGrid}>
        {textField("endpoint", "Endpoint", endpoint, setEndpoint, "https://my-resource.openai.azure.com")}
        {textField("api_version", "API version", apiVersion, setApiVersion, "2024-10-21")}
      </div>
      <fieldset className={f.fieldset}>
        <legend>Deployments (model → deployment)</legend>
        <div className="table-wrap">
          <table className={`table ${f.dataTable} ${f.deployments}`}>
            <thead>
              <tr>
                <th scope="col">Model</th>
                <th scope="col">Deployment</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((row, index) => (
                <tr key={row.key}>
                  <td>
                    <input
                      type="text"
                      aria-label={`Model ${index + 1}`}
                      placeholder="gpt-4o"
                      value={row.model}
                      onChange={(e) => setRow(row.key, { model: e.target.value })}
                    />
                  </td>
                  <td>
                    <input
                      type="text"
                      aria-label={`Deployment ${index + 1}`}
                      placeholder="my-gpt-4o"
                      value={row.deployment}
                      onChange={(e) => setRow(row.key, { deployment: e.target.value })}
                    />
                  </td>
                  <td>
                    <button
                      type="button"
                      className="button button-small button-ghost"
                      aria-label={`Remove deployment ${index + 1}`}
                      onClick={() => setRows((rs) => rs.filter((r) => r.key !== row.key))}
                    >
                      Remove
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        <button type="button" className="button button-small" onClick={() => setRows((rs) => [...rs, makeRow()])}>
          Add deployment
        </button>
        <FieldError id={`${id}-deployments-error`} message={deploymentsError} />
      </fieldset>
      <FormError error={save.error} fields={FIELDS} />
      <div className={f.actions}>
        <button type="submit" className="button button-primary" disabled={save.isPending}>
          {save.isPending ? "Saving…" : "Save Azure configuration"}
        </button>
        {save.isSuccess && (
          <span className={f.success} role="status">
            Azure configuration saved.{save.data.proxies ? ` ${save.data.proxies}` : ""}
          </span>
        )}
      </div>
    </form>
  );
}

function AzureReadOnly(props: { config: AzureConfig }) {
  const { config } = props;
  const entries = Object.entries(config.deployments);
  return (
    <>
      <dl className={f.kv}>
        <div>
          <dt>Endpoint</dt>
          <dd>{config.endpoint ?? "—"}</dd>
        </div>
        <div>
          <dt>API version</dt>
          <dd>{config.api_version ?? "—"}</dd>
        </div>
        <div>
          <dt>Updated</dt>
          <dd>{formatTime(config.updated_at)}</dd>
        </div>
      </dl>
      {entries.length === 0 ? (
        <p className="muted">No deployments.</p>
      ) : (
        <div className="table-wrap">
          <table className={`table ${f.dataTable}`}>
            <caption className="sr-only">Deployments</caption>
            <thead>
              <tr>
                <th scope="col">Model</th>
                <th scope="col">Deployment</th>
              </tr>
            </thead>
            <tbody>
              {entries.map(([model, deployment]) => (
                <tr key={model}>
                  <th scope="row">{model}</th>
                  <td>{deployment}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

export default function AzureSection(props: { orgId: string; admin: boolean }) {
  const { orgId, admin } = props;
  const settings = useQuery({
    queryKey: ["org", orgId, "settings"],
    queryFn: ({ signal }) =>
      apiFetch<Schemas["OrgSettings"]>(`/api/orgs/${orgId}/settings`, { signal }),
  });
  const configured = settings.data?.azure_configured;
  const azure = useQuery({
    queryKey: ["org", orgId, "azure"],
    queryFn: ({ signal }) => fetchAzure(orgId, configured ?? false, signal),
    enabled: configured !== undefined,
  });
  const failed = settings.isError ? settings : azure;
  return (
    <section className={`card ${f.section}`} aria-labelledby="settings-azure">
      <h2 id="settings-azure">Azure OpenAI</h2>
      <p className="muted">
        Requests for the <code>azure</code> provider go to this endpoint, to the deployment
        of the model asked for.
      </p>
      {settings.isError || azure.isError ? (
        <ErrorState error={failed.error} onRetry={() => void failed.refetch()} />
      ) : azure.isPending ? (
        <Loading label="Loading the Azure configuration" />
      ) : (
        <>
          {azure.data === null && (
            <p className="muted">
              Azure OpenAI is not configured for this organisation yet.
              {!admin && " An admin can set it up."}
            </p>
          )}
          {admin ? (
            <AzureForm orgId={orgId} config={azure.data} />
          ) : (
            azure.data && <AzureReadOnly config={azure.data} />
          )}
        </>
      )}
    </section>
  );
}
