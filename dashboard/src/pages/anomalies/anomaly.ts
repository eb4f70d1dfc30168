import type { Anomaly, AnomalyDetails, AnomalyList } from "../../api/types";
import { apiFetch } from "../../api/client";
import { formatNumber, formatPercent, formatUsd, formatMs } from "../../format";

export const ANOMALY_STATUSES = ["open", "resolved", "dismissed", "all"] as const;
export type AnomalyStatusFilter = (typeof ANOMALY_STATUSES)[number];

export function parseAnomalyStatus(value: string | null): AnomalyStatusFilter {
  return (ANOMALY_STATUSES as readonly string[]).includes(value ?? "")
    ? (value as AnomalyStatusFilter)
    : "all";
}

export function anomaliesQuery(orgId: string, status: AnomalyStatusFilter) {
  return {
    queryKey: ["org", orgId, "anomalies", status] as const,
    queryFn: ({ signal }: { signal: AbortSignal }) =>
      apiFetch<AnomalyList>(`/api/orgs/${orgId}/anomalies`, {
        query: { status: status === "all" ? undefined : status },
        signal,
      }),
  };
}

const KIND_LABEL: Record<string, string> = {
  cost: "Cost",
  latency: "Latency",
  error_rate: "Error rate",
  traffic: "Traffic",
  model_drift: "Model drift",
};

export function kindLabel(kind: string): string {
  return KIND_LABEL[kind] ?? kind.replace(/_/g, " ");
}

/** What a value of this kind measures, for axis and figure labels. */
export function kindUnit(kind: string): string {
  switch (kind) {
    case "cost":
      return "USD per hour";
    case "latency":
      return "p95 latency (ms)";
    case "error_rate":
      return "errors / requests";
    case "traffic":
      return "requests per hour";
    case "model_drift":
      return "share of requests answered by a new model";
    default:
      return "value per hour";
  }
}

/** A value of this kind with its unit: "$4.40", "812 ms", "3.10 %", "1,204 requests". */
export function formatKindValue(kind: string, value: number | null | undefined): string {
  switch (kind) {
    case "cost":
      return formatUsd(value);
    case "latency":
      return formatMs(value);
    case "error_rate":
    case "model_drift":
      return formatPercent(value, 1);
    case "traffic":
      return value === null || value === undefined ? "—" : `${formatNumber(Math.round(value * 10) / 10)} requests`;
    default:
      return formatNumber(value);
  }
}

/** The axis tick of a value of this kind (short). */
export function formatKindTick(kind: string, value: number): string {
  switch (kind) {
    case "cost":
      return formatUsd(value);
    case "latency":
      return formatMs(value);
    case "error_rate":
    case "model_drift":
      return formatPercent(value, 0);
    default:
      return formatNumber(value);
  }
}

/** "whole organisation", "feature chat", "feature chat · openai / gpt-4o". */
export function scopeText(a: Pick<Anomaly, "feature" | "provider" | "model">): string {
  const parts = [a.feature === null ? "whole organisation" : `feature ${a.feature}`];
  if (a.provider || a.model) parts.push([a.provider, a.model].filter(Boolean).join(" / "));
  return parts.join(" · ");
}

export function anomalyDetails(a: Anomaly): AnomalyDetails {
  return (a.details ?? {}) as AnomalyDetails;
}

export function severityTone(severity: string): "danger" | "warning" | "neutral" {
  if (severity === "critical") return "danger";
  if (severity === "warning") return "warning";
  return "neutral";
}

export function statusTone(status: string): "danger" | "good" | "neutral" {
  if (status === "open") return "danger";
  if (status === "resolved") return "good";
  return "neutral";
}

/** observed / baseline as "4.4× baseline", when meaningful. */
export function ratioText(a: Anomaly): string | null {
  if (a.baseline === null || a.baseline === 0) return null;
  const ratio = a.observed / a.baseline;
  if (!Number.isFinite(ratio)) return null;
  return `${ratio >= 10 ? Math.round(ratio) : Math.round(ratio * 10) / 10}× baseline`;
}

/** An anomaly overlaps the window [start, end). */
export function overlaps(a: Anomaly, start: number, end: number): boolean {
  const s = Date.parse(a.window_start);
  const e = Date.parse(a.window_end);
  return s < end && e > start;
}
