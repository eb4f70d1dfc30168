// A rule as the form edits it (strings, "" meaning "any"), and its API bodies.
import type { Schemas } from "../../api/types";
import { PROVIDERS, TASK_TYPES, type Provider } from "../../api/names";

export type Rule = Schemas["Rule"];
export type RuleCreateBody = Schemas["RuleCreate"];
export type DryRunBody = Schemas["RuleDraft"];
export { PROVIDERS, TASK_TYPES, type Provider };
export type RulePatchBody = Partial<Schemas["RulePatch"]>;

export interface RuleDraft {
  name: string;
  priority: string;
  enabled: boolean;
  match_feature: string;
  match_task: string;
  match_provider: string;
  match_model: string;
  target_provider: string;
  target_model: string;
}

/** The form's fields, in the order they appear (for errors naming a field). */
export const RULE_FIELDS = [
  "name",
  "priority",
  "enabled",
  "match_feature",
  "match_task",
  "match_provider",
  "match_model",
  "target_provider",
  "target_model",
] as const;
export type RuleField = (typeof RULE_FIELDS)[number];

export const EMPTY_DRAFT: RuleDraft = {
  name: "",
  priority: "",
  enabled: true,
  match_feature: "",
  match_task: "",
  match_provider: "",
  match_model: "",
  target_provider: "",
  target_model: "",
};

export function isProvider(value: string | null | undefined): value is Provider {
  return value != null && (PROVIDERS as readonly string[]).includes(value);
}

export function draftFromRule(rule: Rule): RuleDraft {
  return {
    name: rule.name,
    priority: String(rule.priority),
    enabled: rule.enabled,
    match_feature: rule.match_feature ?? "",
    match_task: rule.match_task ?? "",
    match_provider: rule.match_provider ?? "",
    match_model: rule.match_model ?? "",
    target_provider: rule.target_provider ?? "",
    target_model: rule.target_model ?? "",
  };
}

/**
 * The create form pre-filled from `?new=1&feature=&task=&provider=&model=&target_provider=
 * &target_model=&name=` (what a recommendation's "Create a rule" sends); null without new=1.
 */
export function draftFromQuery(params: URLSearchParams): RuleDraft | null {
  if (params.get("new") !== "1") return null;
  const get = (key: string) => (params.get(key) ?? "").trim();
  const provider = get("provider");
  const targetProvider = get("target_provider");
  return {
    ...EMPTY_DRAFT,
    name: get("name"),
    match_feature: get("feature"),
    match_task: get("task"),
    match_provider: isProvider(provider) ? provider : "",
    match_model: get("model"),
    target_provider: isProvider(targetProvider) ? targetProvider : "",
    target_model: get("target_model"),
  };
}

/** The query keys a pre-filled "new rule" link uses (removed once read). */
export const PREFILL_KEYS = [
  "new",
  "feature",
  "task",
  "provider",
  "model",
  "target_provider",
  "target_model",
  "name",
] as const;

function text(value: string): string | null {
  const trimmed = value.trim();
  return trimmed === "" ? null : trimmed;
}

function provider(value: string): Provider | null {
  return isProvider(value) ? value : null;
}

/** The priority typed in the form: null when empty, else the number (NaN included:
 * the API then answers 400 naming `priority`). */
export function draftPriority(draft: RuleDraft): number | null {
  const trimmed = draft.priority.trim();
  return trimmed === "" ? null : Number(trimmed);
}

/** The create (and dry-run) body: empty conditions are null ("any"). */
export function createBody(draft: RuleDraft): RuleCreateBody {
  return {
    name: draft.name.trim(),
    priority: draftPriority(draft),
    enabled: draft.enabled,
    match_feature: text(draft.match_feature),
    match_task: text(draft.match_task),
    match_provider: provider(draft.match_provider),
    match_model: text(draft.match_model),
    target_provider: provider(draft.target_provider),
    target_model: text(draft.target_model),
  };
}

/** The PATCH body of an edited rule: every field (conditions null = any); the priority
 * only when one is typed (the API keeps it otherwise). */
export function patchBody(draft: RuleDraft): RulePatchBody {
  const { priority, ...rest } = createBody(draft);
  return priority === null || priority === undefined ? rest : { ...rest, priority };
}

/** The dry-run draft. An edited rule is named in ``replaces``, so the API leaves the
 * stored rule out of the rules tried before its draft; without a typed priority the draft
 * keeps the rule's own. */
export function dryRunBody(draft: RuleDraft, editing: Rule | null): DryRunBody {
  const body = createBody(draft);
  if (!editing) return body as DryRunBody;
  return { ...body, priority: body.priority ?? editing.priority, replaces: editing.id };
}

/** What a rule matches, in words: "feature chat · task classification" or "every request". */
export function describeMatch(rule: {
  match_feature: string | null;
  match_task: string | null;
  match_provider: string | null;
  match_model: string | null;
}): string {
  const parts: string[] = [];
  if (rule.match_feature) parts.push(`feature ${rule.match_feature}`);
  if (rule.match_task) parts.push(`task ${rule.match_task}`);
  if (rule.match_provider) parts.push(`provider ${rule.match_provider}`);
  if (rule.match_model) parts.push(`model ${rule.match_model}`);
  return parts.length ? parts.join(" · ") : "every request";
}

/** Where a rule sends requests: "openai / gpt-4o-mini", "same provider / x", "anthropic / same model". */
export function describeTarget(rule: {
  target_provider: string | null;
  target_model: string | null;
}): string {
  return `${rule.target_provider ?? "same provider"} / ${rule.target_model ?? "same model"}`;
}

/** `ids` with the item at `from` moved to `to`. */
export function moved<T>(items: readonly T[], from: number, to: number): T[] {
  const next = items.slice();
  const [item] = next.splice(from, 1);
  if (item === undefined) return next;
  next.splice(Math.max(0, Math.min(to, next.length)), 0, item);
  return next;
}
