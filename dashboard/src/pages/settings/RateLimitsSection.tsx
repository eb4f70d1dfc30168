// Rate limits (requests per minute, concurrent streams): operators change them with
// PATCH /api/orgs/{org}; everyone else reads them from the org's settings, which the
// operator sets.
import { useId, useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { apiFetch } from "../../api/client";
import type { Schemas } from "../../api/types";
import { ErrorState, Loading } from "../../components";
import { formatNumber } from "../../format";
import { FieldError, FormError, fieldErrorFor } from "./shared";
import f from "./forms.module.css";

type Org = Schemas["Org"];
type LimitField = "rate_limit_rpm" | "max_concurrent_streams";
const FIELDS: readonly LimitField[] = ["rate_limit_rpm", "max_concurrent_streams"];

function parseLimit(value: string): { value: number | null; error: string | null } {
  const trimmed = value.trim();
  if (trimmed === "") return { value: null, error: null };
  const n = Number(trimmed);
  if (!Number.isInteger(n) || n <= 0) return { value: null, error: "A whole number above 0, or empty for no limit." };
  return { value: n, error: null };
}

function limitText(value: number | null): string {
  return value === null ? "unlimited" : formatNumber(value);
}

function LimitsForm(props: { org: Org }) {
  const { org } = props;
  const queryClient = useQueryClient();
  const id = useId();
  const [values, setValues] = useState<Record<LimitField, string>>({
    rate_limit_rpm: org.rate_limit_rpm === null ? "" : String(org.rate_limit_rpm),
    max_concurrent_streams: org.max_concurrent_streams === null ? "" : String(org.max_concurrent_streams),
  });
  const [localErrors, setLocalErrors] = useState<Partial<Record<LimitField, string>>>({});
  const save = useMutation({
    mutationFn: (body: Partial<Schemas["OrgPatch"]>) =>
      apiFetch<Schemas["OrgChanged"]>(`/api/orgs/${org.id}`, { method: "PATCH", body }),
    onSuccess: (changed) => {
      queryClient.setQueryData<Schemas["OrgList"]>(["orgs"], (old) =>
        old ? { orgs: old.orgs.map((o) => (o.id === changed.id ? { ...o, ...changed } : o)) } : old,
      );
    },
  });

  function onSubmit(event: FormEvent) {
    event.preventDefault();
    const rpm = parseLimit(values.rate_limit_rpm);
    const streams = parseLimit(values.max_concurrent_streams);
    const errors: Partial<Record<LimitField, string>> = {};
    if (rpm.error) errors.rate_limit_rpm = rpm.error;
    if (streams.error) errors.max_concurrent_streams = streams.error;
    setLocalErrors(errors);
    if (rpm.error || streams.error) return;
    save.mutate({ rate_limit_rpm: rpm.value, max_concurrent_streams: streams.value });
  }

  const field = (name: LimitField, label: string) => {
    const error = localErrors[name] ?? fieldErrorFor(save.error, name);
    return (
      <div className="field">
        <label htmlFor={`${id}-${name}`}>{label}</label>
        <input
          id={`${id}-${name}`}
          type="number"
          min={1}
          step={1}
          inputMode="numeric"
          placeholder="unlimited"
          value={values[name]}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? `${id}-${name}-error` : undefined}
          onChange={(e) => {
            const value = e.target.value;
            setValues((v) => ({ ...v, [name]: value }));
            setLocalErrors((errs) => ({ ...errs, [name]: undefined }));
          }}
        />
        <FieldError id={`${id}-${name}-error`} message={error} />
      </div>
    );
  };

  return (
    <form onSubmit={onSubmit} noValidate>
      <div className={f.formGrid}>
        {field("rate_limit_rpm", "Requests per minute")}
        {field("max_concurrent_streams", "Max concurrent streams")}
      </div>
      <p className={f.hint}>
        Empty means no limit. Limits are counted per proxy process: with N processes an
        organisation can get up to N times its limit.
      </p>
      <FormError error={save.error} fields={FIELDS} />
      <div className={f.actions}>
        <button type="submit" className="button button-primary" disabled={save.isPending}>
          {save.isPending ? "Saving…" : "Save limits"}
        </button>
        {save.isSuccess && (
          <span className={f.success} role="status">
            Limits saved: {limitText(save.data.rate_limit_rpm)} requests per minute,{" "}
            {limitText(save.data.max_concurrent_streams)} concurrent streams.
            {save.data.proxies ? ` ${save.data.proxies}` : ""}
          </span>
        )}
      </div>
    </form>
  );
}

function OperatorLimits(props: { orgId: string }) {
  const orgs = useQuery({
    queryKey: ["orgs"],
    queryFn: ({ signal }) => apiFetch<Schemas["OrgList"]>("/api/orgs", { signal }),
  });
  if (orgs.isPending) return <Loading label="Loading limits" />;
  if (orgs.isError) return <ErrorState error={orgs.error} onRetry={() => void orgs.refetch()} />;
  const org = orgs.data.orgs.find((o) => o.id === props.orgId);
  if (!org) return <p className="muted">This organisation was not found among the organisations.</p>;
  return <LimitsForm key={org.id} org={org} />;
}

function ReadOnlyLimits(props: { orgId: string }) {
  const { orgId } = props;
  const settings = useQuery({
    queryKey: ["org", orgId, "settings"],
    queryFn: ({ signal }) =>
      apiFetch<Schemas["OrgSettings"]>(`/api/orgs/${orgId}/settings`, { signal }),
  });
  if (settings.isPending) return <Loading label="Loading limits" />;
  if (settings.isError) {
    return <ErrorState error={settings.error} onRetry={() => void settings.refetch()} />;
  }
  return (
    <>
      <dl className={`${f.formGrid} ${f.values}`}>
        <div>
          <dt className="muted">Requests per minute</dt>
          <dd>{limitText(settings.data.rate_limit_rpm)}</dd>
        </div>
        <div>
          <dt className="muted">Max concurrent streams</dt>
          <dd>{limitText(settings.data.max_concurrent_streams)}</dd>
        </div>
      </dl>
      <p className="muted">
        Set by your Lectr operator, counted per proxy process.
      </p>
    </>
  );
}

export default function RateLimitsSection(props: { orgId: string; operator: boolean }) {
  return (
    <section className={`card ${f.section}`} aria-labelledby="settings-limits">
      <h2 id="settings-limits">Rate limits</h2>
      {props.operator ? (
        <OperatorLimits orgId={props.orgId} />
      ) : (
        <ReadOnlyLimits orgId={props.orgId} />
      )}
    </section>
  );
}
