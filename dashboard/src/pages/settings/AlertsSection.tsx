// Alerts and latency: the P95 latency threshold, alert recipients, alert webhooks.
import { useId, useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { ApiError, apiFetch } from "../../api/client";
import type { Schemas } from "../../api/types";
import { ErrorState, Loading } from "../../components";
import { formatMs } from "../../format";
import ListEditor, { withPending } from "./ListEditor";
import { FieldError, FormError, fieldErrorFor } from "./shared";
import f from "./forms.module.css";

type OrgSettings = Schemas["OrgSettings"];
const FIELDS = ["p95_latency_threshold_ms", "alert_recipients", "alert_webhooks"] as const;

/** The index an API error names inside a list field ("alert_recipients.2" → 2). */
function errorIndex(error: unknown, field: string): number | null {
  if (!(error instanceof ApiError) || !error.field) return null;
  const [head, index] = error.field.split(".");
  if (head !== field || index === undefined) return null;
  const n = Number(index);
  return Number.isInteger(n) ? n : null;
}

function AlertsForm(props: { orgId: string; settings: OrgSettings; admin: boolean }) {
  const { orgId, settings, admin } = props;
  const queryClient = useQueryClient();
  const id = useId();
  const [threshold, setThreshold] = useState(String(settings.p95_latency_threshold_ms));
  const [recipients, setRecipients] = useState<string[]>(settings.alert_recipients);
  const [pendingRecipient, setPendingRecipient] = useState("");
  const [webhooks, setWebhooks] = useState<string[]>(settings.alert_webhooks);
  const [pendingWebhook, setPendingWebhook] = useState("");
  const [localError, setLocalError] = useState<string | null>(null);

  const save = useMutation({
    mutationFn: (body: Partial<Schemas["SettingsPatch"]>) =>
      apiFetch<OrgSettings>(`/api/orgs/${orgId}/settings`, { method: "PATCH", body }),
    onSuccess: (saved) => {
      queryClient.setQueryData(["org", orgId, "settings"], saved);
      setRecipients(saved.alert_recipients);
      setWebhooks(saved.alert_webhooks);
      setPendingRecipient("");
      setPendingWebhook("");
      setThreshold(String(saved.p95_latency_threshold_ms));
    },
  });

  function onSubmit(event: FormEvent) {
    event.preventDefault();
    const value = Number(threshold.trim());
    if (threshold.trim() === "" || !Number.isInteger(value) || value <= 0) {
      setLocalError("A whole number of milliseconds, more than 0.");
      return;
    }
    setLocalError(null);
    const nextRecipients = withPending(recipients, pendingRecipient);
    const nextWebhooks = withPending(webhooks, pendingWebhook);
    setRecipients(nextRecipients);
    setWebhooks(nextWebhooks);
    setPendingRecipient("");
    setPendingWebhook("");
    save.mutate({
      p95_latency_threshold_ms: value,
      alert_recipients: nextRecipients,
      alert_webhooks: nextWebhooks,
    });
  }

  const thresholdError = localError ?? fieldErrorFor(save.error, "p95_latency_threshold_ms");

  return (
    <form onSubmit={onSubmit} noValidate>
      <div className="field">
        <label htmlFor={`${id}-p95`}>P95 latency threshold (ms)</label>
        {admin ? (
          <input
            id={`${id}-p95`}
            className={f.narrowInput}
            type="number"
            min={1}
            step={1}
            inputMode="numeric"
            value={threshold}
            aria-invalid={thresholdError ? true : undefined}
            aria-describedby={`${id}-p95-hint${thresholdError ? ` ${id}-p95-error` : ""}`}
            onChange={(e) => {
              setThreshold(e.target.value);
              setLocalError(null);
            }}
          />
        ) : (
          <output id={`${id}-p95`}>{formatMs(settings.p95_latency_threshold_ms)}</output>
        )}
        <p className={f.hint} id={`${id}-p95-hint`}>
          The target line on the Overview's latency chart.
        </p>
        <FieldError id={`${id}-p95-error`} message={thresholdError} />
      </div>
      <ListEditor
        label="Alert recipients"
        itemNoun="recipient"
        items={recipients}
        onChange={setRecipients}
        pending={pendingRecipient}
        onPending={setPendingRecipient}
        inputType="email"
        placeholder="name@example.com"
        error={fieldErrorFor(save.error, "alert_recipients")}
        errorIndex={errorIndex(save.error, "alert_recipients")}
        readOnly={!admin}
        emptyText="No extra recipients: anomaly alerts go to the organisation's members."
      />
      <ListEditor
        label="Alert webhooks"
        itemNoun="webhook"
        items={webhooks}
        onChange={setWebhooks}
        pending={pendingWebhook}
        onPending={setPendingWebhook}
        inputType="url"
        placeholder="https://hooks.slack.com/services/…"
        error={fieldErrorFor(save.error, "alert_webhooks")}
        errorIndex={errorIndex(save.error, "alert_webhooks")}
        readOnly={!admin}
        emptyText="No webhooks."
      />
      {admin && (
        <p className={f.hint}>
          Webhooks get a Slack-compatible JSON POST for each new anomaly; only https:// URLs
          on public hosts.
        </p>
      )}
      <FormError error={save.error} fields={FIELDS} />
      {admin && (
        <div className={f.actions}>
          <button type="submit" className="button button-primary" disabled={save.isPending}>
            {save.isPending ? "Saving…" : "Save settings"}
          </button>
          {save.isSuccess && (
            <span className={f.success} role="status">
              Settings saved.
            </span>
          )}
        </div>
      )}
    </form>
  );
}

export default function AlertsSection(props: { orgId: string; admin: boolean }) {
  const { orgId, admin } = props;
  const settings = useQuery({
    queryKey: ["org", orgId, "settings"],
    queryFn: ({ signal }) => apiFetch<OrgSettings>(`/api/orgs/${orgId}/settings`, { signal }),
  });
  return (
    <section className={`card ${f.section}`} aria-labelledby="settings-alerts">
      <h2 id="settings-alerts">Alerts and latency</h2>
      {settings.isPending ? (
        <Loading label="Loading settings" />
      ) : settings.isError ? (
        <ErrorState error={settings.error} onRetry={() => void settings.refetch()} />
      ) : (
        <AlertsForm orgId={orgId} settings={settings.data} admin={admin} />
      )}
    </section>
  );
}
