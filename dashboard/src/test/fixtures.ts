// Sample API bodies for tests: complete objects with overridable fields.
import type { Anomaly, Key, RequestLog, Summary } from "../api/types";

const HOUR = 3600_000;

export function hoursAgo(hours: number, from: number = Date.now()): string {
  return new Date(from - hours * HOUR).toISOString();
}

/** The start of the current UTC hour. */
export function currentHour(now: number = Date.now()): number {
  return Math.floor(now / HOUR) * HOUR;
}

export function makeSeries(hours = 24, now: number = Date.now()) {
  const end = currentHour(now) + HOUR;
  return Array.from({ length: hours }, (_, i) => ({
    start: new Date(end - (hours - i) * HOUR).toISOString(),
    requests: 100 + i,
    errors: i % 5 === 0 ? 2 : 0,
    cost_usd: 0.5 + i / 100,
    p95_ms: 800 + i,
  }));
}

/** A computed 24 h summary with traffic (override `data` fields with `data`). */
export function makeSummary(
  data: Record<string, unknown> = {},
  extra: Partial<Summary> = {},
): Summary {
  const now = Date.now();
  const end = currentHour(now) + HOUR;
  return {
    period: "24h",
    window_start: new Date(end - 24 * HOUR).toISOString(),
    window_end: new Date(end).toISOString(),
    computed_at: new Date(now - 30_000).toISOString(),
    data: {
      requests: 14400,
      errors: 144,
      error_rate: 0.01,
      cost_usd: 48.5,
      unpriced_requests: 0,
      input_tokens: 1_200_000,
      output_tokens: 300_000,
      cached_tokens: 0,
      latency_mean_ms: 640.2,
      latency_p50_ms: 500,
      latency_p95_ms: 1240,
      ttfb_mean_ms: 212.4,
      streaming_share: 0.25,
      tokeniser_share: 0,
      p95_threshold_ms: 2000,
      p95_over_threshold: false,
      by_model: [
        { key: "gpt-4o", requests: 9000, errors: 90, cost_usd: 40, p95_ms: 1300 },
        { key: "claude-3-5-haiku", requests: 5000, errors: 50, cost_usd: 8, p95_ms: 900 },
        { key: null, requests: 400, errors: 4, cost_usd: 0.5, p95_ms: 700, folded_keys: 7 },
      ],
      by_feature: [
        { key: "chat", requests: 10000, errors: 100, cost_usd: 40, p95_ms: 1250 },
        { key: "untagged", requests: 4400, errors: 44, cost_usd: 8.5, p95_ms: 1100 },
      ],
      by_provider: [
        { key: "openai", requests: 9400, errors: 94, cost_usd: 40.5, p95_ms: 1280 },
        { key: "anthropic", requests: 5000, errors: 50, cost_usd: 8, p95_ms: 900 },
      ],
      by_task: [
        { key: "classification", requests: 8000, errors: 10, cost_usd: 20, p95_ms: 600 },
        { key: "untagged", requests: 6400, errors: 134, cost_usd: 28.5, p95_ms: 1500 },
      ],
      series_step: "hour",
      series: makeSeries(24, now),
      pipeline: {
        events_dropped: 0,
        events_published: 14400,
        drop_rate: 0,
        dropped_by_instance: {},
        ingest_lag_ms: 120,
        ingest_lag_at: new Date(now - 60_000).toISOString(),
      },
      anomaly_detection: { active: true, data_since: hoursAgo(24 * 20, now), active_in_hours: 0 },
      ...data,
    },
    ...extra,
  };
}

/** What the API answers before the aggregate job's first run (a new organisation). */
export function makeEmptySummary(): Summary {
  return {
    period: "24h",
    window_start: null,
    window_end: null,
    computed_at: null,
    data: {
      requests: 0, errors: 0, error_rate: 0, cost_usd: 0, unpriced_requests: 0,
      input_tokens: 0, output_tokens: 0, cached_tokens: 0, latency_mean_ms: null,
      latency_p50_ms: null, latency_p95_ms: null, ttfb_mean_ms: null, streaming_share: 0,
      tokeniser_share: 0, p95_over_threshold: false, by_model: [], by_feature: [],
      by_provider: [], by_task: [], series: [], pipeline: null,
      anomaly_detection: { active: false, data_since: null, active_in_hours: null },
      p95_threshold_ms: 2000, series_step: "hour",
    },
  };
}

export function makeAnomaly(extra: Partial<Anomaly> = {}): Anomaly {
  const now = Date.now();
  const start = currentHour(now) - 2 * HOUR;
  const recent = Array.from({ length: 25 }, (_, i) => ({
    hour: new Date(start - (24 - i) * HOUR).toISOString(),
    value: i === 24 ? 4.4 : 1 + (i % 3) / 10,
  }));
  return {
    id: "a1",
    org_id: "o1",
    kind: "cost",
    severity: "critical",
    status: "open",
    feature: "chat",
    provider: null,
    model: null,
    window_start: new Date(start).toISOString(),
    window_end: new Date(start + HOUR).toISOString(),
    observed: 4.4,
    baseline: 1,
    baseline_stddev: 0.2,
    threshold: 1.4,
    details: {
      z: 17,
      sigma: 2,
      baseline_std: 0.2,
      sigma_floor_applied: false,
      baseline_hours: 168,
      window_requests: 900,
      direction: "up",
      recent,
    },
    detected_at: new Date(start + HOUR + 5 * 60_000).toISOString(),
    notified_at: null,
    resolved_at: null,
    ...extra,
  };
}

let requestSeq = 0;

export function makeRequestLog(extra: Partial<RequestLog> = {}): RequestLog {
  requestSeq += 1;
  const created = new Date(Date.now() - requestSeq * 60_000);
  return {
    id: `00000000-0000-4000-8000-${String(requestSeq).padStart(12, "0")}`,
    created_at: created.toISOString(),
    completed_at: new Date(created.getTime() + 812).toISOString(),
    org_id: "o1",
    api_key_id: "11111111-1111-4111-8111-111111111111",
    provider: "openai",
    provider_unknown: false,
    requested_model: "gpt-4o",
    actual_model: "gpt-4o",
    response_model: "gpt-4o-2024-08-06",
    endpoint: "/v1/chat/completions",
    streaming: false,
    status_code: 200,
    error_category: null,
    error_source: null,
    latency_ms: 812,
    ttfb_ms: null,
    input_tokens: 1200,
    output_tokens: 300,
    cached_tokens: 0,
    token_source: "provider",
    cost_usd: 0.0042,
    feature: "chat",
    task_type: "classification",
    rule_id: null,
    skipped_rule_id: null,
    proxy_instance: "proxy-a",
    ...extra,
  };
}

export function makeKey(extra: Partial<Key> = {}): Key {
  return {
    id: "k1",
    display_prefix: "lc_key_AbCd",
    name: "default",
    created_at: hoursAgo(100),
    revoked_at: null,
    ...extra,
  };
}
