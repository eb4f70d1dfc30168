import type { AnomalyDetection, BreakdownEntry, Summary, SummaryData, SummaryPipeline } from "../../api/types";

function num(value: unknown, fallback = 0): number {
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}
function numOrNull(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}
function list<T>(value: unknown): T[] {
  return Array.isArray(value) ? (value as T[]) : [];
}

/** A summary's `data` with every field the page reads present (zeros when missing). */
export function summaryData(summary: Summary): SummaryData {
  const d = summary.data as Record<string, unknown>;
  const detection = (d.anomaly_detection ?? {}) as Partial<AnomalyDetection>;
  const pipeline = d.pipeline as Partial<SummaryPipeline> | null | undefined;
  return {
    requests: num(d.requests),
    errors: num(d.errors),
    error_rate: num(d.error_rate),
    cost_usd: num(d.cost_usd),
    unpriced_requests: num(d.unpriced_requests),
    input_tokens: num(d.input_tokens),
    output_tokens: num(d.output_tokens),
    cached_tokens: num(d.cached_tokens),
    latency_mean_ms: numOrNull(d.latency_mean_ms),
    latency_p50_ms: numOrNull(d.latency_p50_ms),
    latency_p95_ms: numOrNull(d.latency_p95_ms),
    ttfb_mean_ms: numOrNull(d.ttfb_mean_ms),
    streaming_share: num(d.streaming_share),
    tokeniser_share: num(d.tokeniser_share),
    p95_threshold_ms: numOrNull(d.p95_threshold_ms),
    p95_over_threshold: d.p95_over_threshold === true,
    by_model: list<BreakdownEntry>(d.by_model),
    by_feature: list<BreakdownEntry>(d.by_feature),
    by_provider: list<BreakdownEntry>(d.by_provider),
    by_task: list<BreakdownEntry>(d.by_task),
    series_step: d.series_step === "day" ? "day" : "hour",
    series: list(d.series),
    pipeline: pipeline
      ? {
          events_dropped: num(pipeline.events_dropped),
          events_published: num(pipeline.events_published),
          drop_rate: num(pipeline.drop_rate),
          dropped_by_instance:
            pipeline.dropped_by_instance && typeof pipeline.dropped_by_instance === "object"
              ? pipeline.dropped_by_instance
              : {},
          ingest_lag_ms: numOrNull(pipeline.ingest_lag_ms),
          ingest_lag_at: typeof pipeline.ingest_lag_at === "string" ? pipeline.ingest_lag_at : null,
        }
      : null,
    anomaly_detection: {
      active: detection.active === true,
      data_since: typeof detection.data_since === "string" ? detection.data_since : null,
      active_in_hours: numOrNull(detection.active_in_hours),
    },
  };
}

export const PERIODS = ["24h", "7d", "30d"] as const;
export type PeriodKey = (typeof PERIODS)[number];
export const PERIOD_LABEL: Record<PeriodKey, string> = { "24h": "24 h", "7d": "7 d", "30d": "30 d" };
export const PERIOD_HOURS: Record<PeriodKey, number> = { "24h": 24, "7d": 168, "30d": 720 };

export function parsePeriod(value: string | null): PeriodKey {
  return (PERIODS as readonly string[]).includes(value ?? "") ? (value as PeriodKey) : "24h";
}

/**
 * Minutes the period's figures cover: from the window's start to when the summary was
 * computed (the current hour is partial), at most the whole window; the nominal period
 * when the summary has no window yet.
 */
export function coveredMinutes(summary: Summary, period: PeriodKey): number {
  const nominal = PERIOD_HOURS[period] * 60;
  if (!summary.window_start) return nominal;
  const start = Date.parse(summary.window_start);
  const end = summary.window_end ? Date.parse(summary.window_end) : start + nominal * 60000;
  const at = summary.computed_at ? Date.parse(summary.computed_at) : Date.now();
  const minutes = (Math.min(end, at) - start) / 60000;
  return Number.isFinite(minutes) && minutes > 0 ? minutes : nominal;
}

export const STALE_AFTER_MS = 10 * 60 * 1000;
