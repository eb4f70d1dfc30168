// Names for the generated schema's models (src/api/schema.d.ts, `npm run gen:api`), plus
// the shapes the API documents only as free-form objects (a summary's `data`, an
// anomaly's `details`).
import type { components } from "./schema";

export type Schemas = components["schemas"];

export type PublicConfig = Schemas["PublicConfig"];
export type OidcConfig = Schemas["OidcConfig"];
export type Me = Schemas["Me"];
export type MyOrg = Schemas["MyOrg"];
export type Role = MyOrg["role"];
export type Org = Schemas["Org"];
export type OrgList = Schemas["OrgList"];
export type OrgPatch = Schemas["OrgPatch"];
export type OrgChanged = Schemas["OrgChanged"];
export type Summary = Schemas["Summary"];
export type Anomaly = Schemas["Anomaly"];
export type AnomalyList = Schemas["AnomalyList"];
export type Recommendation = Schemas["Recommendation"];
export type RecommendationList = Schemas["RecommendationList"];
export type Rule = Schemas["Rule"];
export type RuleList = Schemas["RuleList"];
export type RuleCreate = Schemas["RuleCreate"];
export type RulePatch = Schemas["RulePatch"];
export type RuleChanged = Schemas["RuleChanged"];
export type RuleDeleted = Schemas["RuleDeleted"];
export type RuleOrder = Schemas["RuleOrder"];
export type RulesReordered = Schemas["RulesReordered"];
export type DryRun = Schemas["DryRun"];
export type DryRunModel = Schemas["DryRunModel"];
export type RequestLog = Schemas["RequestLog"];
export type RequestPage = Schemas["RequestPage"];
export type FailurePage = Schemas["FailurePage"];
export type Key = Schemas["Key"];
export type KeyList = Schemas["KeyList"];
export type KeyCreate = Schemas["KeyCreate"];
export type KeyCreated = Schemas["KeyCreated"];
export type KeyRevoked = Schemas["KeyRevoked"];
export type Member = Schemas["Member"];
export type MemberList = Schemas["MemberList"];
export type MemberPatch = Schemas["MemberPatch"];
export type Invite = Schemas["Invite"];
export type InviteList = Schemas["InviteList"];
export type InviteCreate = Schemas["InviteCreate"];
export type InviteSent = Schemas["InviteSent"];
export type InviteAccept = Schemas["InviteAccept"];
export type InviteAccepted = Schemas["InviteAccepted"];
export type OrgSettings = Schemas["OrgSettings"];
export type SettingsPatch = Schemas["SettingsPatch"];
export type AzureConfig = Schemas["AzureConfig"];
export type AzureConfigPut = Schemas["AzureConfigPut"];
export type AzureConfigChanged = Schemas["AzureConfigChanged"];
export type Pipeline = Schemas["Pipeline"];
export type ProxyPipeline = Schemas["ProxyPipeline"];
export type ConsumerPipeline = Schemas["ConsumerPipeline"];
export type AuditEntry = Schemas["AuditEntry"];
export type AuditPage = Schemas["AuditPage"];
export type ErrorBody = Schemas["ErrorBody"];

/** POST /api/session (admin-secret sign-in); GET /api/session answers SessionState. */
export type AdminSession = Schemas["SessionInfo"];
export type SessionState = Schemas["SessionState"];
export type SessionCreate = Schemas["SessionCreate"];

/** One entry of a summary's by_model / by_feature / by_provider / by_task. */
export interface BreakdownEntry {
  /** null for the last entry, which folds `folded_keys` keys together. */
  key: string | null;
  requests: number;
  errors: number;
  cost_usd: number;
  p95_ms: number | null;
  folded_keys?: number;
}

export interface SeriesPoint {
  start: string;
  requests: number;
  errors: number;
  cost_usd: number;
  p95_ms: number | null;
}

export interface SummaryPipeline {
  events_dropped: number;
  events_published: number;
  drop_rate: number;
  /** proxy instance → events dropped in the period (only instances that dropped some). */
  dropped_by_instance: Record<string, number>;
  ingest_lag_ms: number | null;
  ingest_lag_at: string | null;
}

export interface AnomalyDetection {
  active: boolean;
  data_since: string | null;
  active_in_hours: number | null;
}

/** A summary's `data` (scheduler/summary_stats.py and scheduler/aggregate.py). */
export interface SummaryData {
  requests: number;
  errors: number;
  error_rate: number;
  cost_usd: number;
  unpriced_requests: number;
  input_tokens: number;
  output_tokens: number;
  cached_tokens: number;
  latency_mean_ms: number | null;
  latency_p50_ms: number | null;
  latency_p95_ms: number | null;
  ttfb_mean_ms: number | null;
  streaming_share: number;
  tokeniser_share: number;
  p95_threshold_ms: number | null;
  p95_over_threshold: boolean;
  by_model: BreakdownEntry[];
  by_feature: BreakdownEntry[];
  by_provider: BreakdownEntry[];
  by_task: BreakdownEntry[];
  series_step: "hour" | "day";
  series: SeriesPoint[];
  /** null before the first aggregate run. */
  pipeline: SummaryPipeline | null;
  anomaly_detection: AnomalyDetection;
}

export type Period = Summary["period"];

export interface AnomalyRecentPoint {
  hour: string;
  value: number | null;
}

/** An anomaly's `details` (scheduler/anomalies.py). */
export interface AnomalyDetails {
  z?: number;
  sigma?: number;
  baseline_std?: number | null;
  sigma_floor_applied?: boolean;
  baseline_hours?: number;
  window_requests?: number;
  direction?: "up" | "down";
  recent?: AnomalyRecentPoint[];
  pairs?: { provider: string; model: string; response_model: string; requests: number }[];
}
