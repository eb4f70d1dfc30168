// The create / edit form of a routing rule, with its dry-run "Preview" before saving.
import { useEffect, useId, useRef, useState, type FormEvent } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { apiFetch, ApiError } from "../../api/client";
import type { Schemas } from "../../api/types";
import { Loading } from "../../components";
import { FieldError, FormError, fieldErrorFor } from "../settings/shared";
import DryRunPreview from "./DryRunPreview";
import {
  PROVIDERS,
  RULE_FIELDS,
  TASK_TYPES,
  createBody,
  draftPriority,
  dryRunBody,
  patchBody,
  type Rule,
  type RuleDraft,
  type RuleField,
} from "./ruleDraft";
import f from "../settings/forms.module.css";

type DryRun = Schemas["DryRun"];
type RuleChanged = Schemas["RuleChanged"];

/** A problem found before calling the API, on the field it concerns. */
interface LocalError {
  field: RuleField;
  message: string;
}

function checkDraft(draft: RuleDraft): LocalError | null {
  if (draft.name.trim() === "") return { field: "name", message: "Give the rule a name." };
  const priority = draftPriority(draft);
  if (priority !== null && (!Number.isInteger(priority) || priority < 0)) {
    return { field: "priority", message: "Priority is a whole number, 0 or more." };
  }
  if (draft.target_provider === "" && draft.target_model.trim() === "") {
    return {
      field: "target_model",
      message: "A rule needs a target: a target provider, a target model, or both.",
    };
  }
  return null;
}

export default function RuleForm(props: {
  orgId: string;
  editing: Rule | null; // null: a new rule
  initial: RuleDraft;
  onSaved: (rule: RuleChanged) => void;
  onCancel: () => void;
}) {
  const { orgId, editing } = props;
  const queryClient = useQueryClient();
  const formId = useId();
  const [draft, setDraft] = useState<RuleDraft>(props.initial);
  const [localError, setLocalError] = useState<LocalError | null>(null);
  const [previewedKey, setPreviewedKey] = useState<string | null>(null);

  const draftKey = JSON.stringify(draft);

  // Opened (New rule, Edit, or from a recommendation): bring the form into view.
  const sectionRef = useRef<HTMLElement>(null);
  useEffect(() => {
    const section = sectionRef.current;
    if (!section) return;
    section.scrollIntoView?.({ block: "start", behavior: "smooth" });
    section.querySelector<HTMLInputElement>("input")?.focus({ preventScroll: true });
  }, []);

  const preview = useMutation({
    mutationFn: (body: Schemas["RuleCreate"]) =>
      apiFetch<DryRun>(`/api/orgs/${orgId}/rules/dry-run`, { method: "POST", body }),
  });

  const save = useMutation({
    mutationFn: (d: RuleDraft) =>
      editing
        ? apiFetch<RuleChanged>(`/api/orgs/${orgId}/rules/${editing.id}`, {
            method: "PATCH",
            body: patchBody(d),
          })
        : apiFetch<RuleChanged>(`/api/orgs/${orgId}/rules`, {
            method: "POST",
            body: createBody(d),
          }),
    onSuccess: async (rule) => {
      await queryClient.invalidateQueries({ queryKey: ["org", orgId, "rules"] });
      props.onSaved(rule);
    },
  });

  function set<K extends keyof RuleDraft>(key: K, value: RuleDraft[K]) {
    setDraft((d) => ({ ...d, [key]: value }));
    if (localError?.field === key) setLocalError(null);
  }

  function onPreview() {
    const problem = checkDraft(draft);
    setLocalError(problem);
    if (problem) return;
    setPreviewedKey(draftKey);
    preview.mutate(dryRunBody(draft, editing));
  }

  function onSubmit(event: FormEvent) {
    event.preventDefault();
    const problem = checkDraft(draft);
    setLocalError(problem);
    if (problem) return;
    save.mutate(draft);
  }

  // The error shown under a field: ours first, else the API's (save, then preview).
  function errorOf(field: RuleField): string | null {
    if (localError?.field === field) return localError.message;
    return fieldErrorFor(save.error, field) ?? fieldErrorFor(preview.error, field);
  }

  const ids = Object.fromEntries(RULE_FIELDS.map((f) => [f, `${formId}-${f}`])) as Record<
    RuleField,
    string
  >;
  const errIds = Object.fromEntries(RULE_FIELDS.map((f) => [f, `${formId}-${f}-error`])) as Record<
    RuleField,
    string
  >;
  const described = (field: RuleField) => (errorOf(field) ? errIds[field] : undefined);
  const invalid = (field: RuleField) => (errorOf(field) ? true : undefined);

  const textField = (field: RuleField, label: string, hint: string, list?: string) => (
    <div className={field === "name" ? `field ${f.wide}` : "field"}>
      <label htmlFor={ids[field]}>{label}</label>
      <input
        id={ids[field]}
        type="text"
        list={list}
        value={draft[field] as string}
        placeholder={hint}
        aria-invalid={invalid(field)}
        aria-describedby={described(field)}
        onChange={(e) => set(field, e.target.value as never)}
      />
      <FieldError id={errIds[field]} message={errorOf(field)} />
    </div>
  );

  const providerField = (field: "match_provider" | "target_provider", label: string, none: string) => (
    <div className="field">
      <label htmlFor={ids[field]}>{label}</label>
      <select
        id={ids[field]}
        value={draft[field]}
        aria-invalid={invalid(field)}
        aria-describedby={described(field)}
        onChange={(e) => set(field, e.target.value)}
      >
        <option value="">{none}</option>
        {PROVIDERS.map((p) => (
          <option key={p} value={p}>
            {p}
          </option>
        ))}
      </select>
      <FieldError id={errIds[field]} message={errorOf(field)} />
    </div>
  );

  const title = editing ? `Edit rule ${editing.name}` : "New rule";
  const stale = previewedKey !== null && previewedKey !== draftKey;

  return (
    <section ref={sectionRef} className={`card ${f.ruleForm}`} aria-labelledby={`${formId}-title`}>
      <h2 id={`${formId}-title`}>{title}</h2>
      <form onSubmit={onSubmit} noValidate>
        <div className={f.formGrid}>
          {textField("name", "Name", "e.g. cheaper model for support-bot")}
          <div className="field">
            <label htmlFor={ids.priority}>Priority</label>
            <input
              id={ids.priority}
              type="number"
              min={0}
              step={1}
              inputMode="numeric"
              value={draft.priority}
              placeholder={editing ? "" : "after the others"}
              aria-invalid={invalid("priority")}
              aria-describedby={described("priority") ?? `${formId}-priority-hint`}
              onChange={(e) => set("priority", e.target.value)}
            />
            <p className={f.hint} id={`${formId}-priority-hint`}>
              Lower runs first; the first matching rule takes the request.
            </p>
            <FieldError id={errIds.priority} message={errorOf("priority")} />
          </div>
          <div className={`field ${f.checkboxField}`}>
            <input
              id={ids.enabled}
              type="checkbox"
              checked={draft.enabled}
              onChange={(e) => set("enabled", e.target.checked)}
            />
            <label htmlFor={ids.enabled}>Enabled</label>
            <FieldError id={errIds.enabled} message={errorOf("enabled")} />
          </div>
        </div>

        <fieldset className={`${f.fieldset} ${f.formGrid}`}>
          <legend>When a request matches (empty means any)</legend>
          {textField("match_feature", "Match feature", "any feature")}
          {textField("match_task", "Match task", "any task", `${formId}-tasks`)}
          <datalist id={`${formId}-tasks`}>
            {TASK_TYPES.map((t) => (
              <option key={t} value={t} />
            ))}
          </datalist>
          {providerField("match_provider", "Match provider", "Any provider")}
          {textField("match_model", "Match model", "any model")}
        </fieldset>

        <fieldset className={`${f.fieldset} ${f.formGrid}`}>
          <legend>Send it to (at least one)</legend>
          {providerField("target_provider", "Target provider", "Same provider")}
          {textField("target_model", "Target model", "same model")}
        </fieldset>

        <FormError error={save.error} fields={RULE_FIELDS} />

        <div className={f.actions}>
          <button
            type="button"
            className="button"
            onClick={onPreview}
            disabled={preview.isPending}
          >
            Preview
          </button>
          <button type="submit" className="button button-primary" disabled={save.isPending}>
            {save.isPending ? "Saving…" : "Save rule"}
          </button>
          <button type="button" className="button button-ghost" onClick={props.onCancel}>
            Cancel
          </button>
        </div>
      </form>

      <div className={f.dryRun} aria-live="polite">
        {preview.isPending && <Loading label="Computing the preview over the last 7 days…" />}
        {preview.isError && !isFieldOnly(preview.error) && (
          <p className={f.formError} role="alert">
            Preview failed: {preview.error.message}
          </p>
        )}
        {preview.data && !preview.isPending && (
          <DryRunPreview result={preview.data} stale={stale} />
        )}
        {!preview.data && !preview.isPending && !preview.isError && (
          <p className={f.hint}>
            Preview shows what this rule would have matched over the last 7 days, and the
            cost before and after, before you save it.
          </p>
        )}
      </div>
    </section>
  );
}

function isFieldOnly(error: unknown): boolean {
  return (
    error instanceof ApiError &&
    error.field !== null &&
    (RULE_FIELDS as readonly string[]).includes(error.field.split(".")[0] ?? "")
  );
}
