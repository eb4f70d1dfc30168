// Cheaper-model recommendations: one card each, with the evidence, the estimated monthly
// saving, "Dismiss" (member+) and "Create a rule" (admin+, pre-fills the Rules page).
import { useSearchParams, useNavigate } from "react-router-dom";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { apiFetch } from "../api/client";
import type { Schemas } from "../api/types";
import { useOrg } from "../auth/useOrg";
import { EmptyState, ErrorState, Loading, PageHeader } from "../components";
import { formatMs, formatNumber, formatPercent, formatTime, formatUsd } from "../format";
import { errorMessage } from "./settings/shared";
import styles from "./RecommendationsPage.module.css";
import f from "./settings/forms.module.css";

type Recommendation = Schemas["Recommendation"];
type RecommendationList = Schemas["RecommendationList"];

const STATUSES = ["open", "dismissed", "all"] as const;
type StatusFilter = (typeof STATUSES)[number];

function isStatus(value: string | null): value is StatusFilter {
  return value !== null && (STATUSES as readonly string[]).includes(value);
}

// `details` is free-form JSON (money as decimal strings): read it defensively.
type Json = Record<string, unknown>;

function obj(value: unknown): Json | null {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Json) : null;
}

function num(value: unknown): number | null {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value))) return Number(value);
  return null;
}

function str(value: unknown): string | null {
  return typeof value === "string" && value !== "" ? value : null;
}

/** The estimated monthly saving: details.monthly_saving_usd, else the window's saving. */
export function monthlySaving(rec: Recommendation): number {
  return num(rec.details["monthly_saving_usd"]) ?? rec.projected_savings_usd;
}

interface Evidence {
  label: string;
  value: string;
}

/** The evidence worth reading, in plain words, from whatever `details` carries. */
export function evidenceOf(rec: Recommendation): Evidence[] {
  const details = rec.details;
  const signals = obj(details["signals"]) ?? {};
  const out: Evidence[] = [];
  const add = (label: string, value: string | null) => {
    if (value !== null) out.push({ label, value });
  };
  const requests = num(signals["requests"]) ?? rec.request_count;
  add("Requests (30 days)", formatNumber(requests));
  const prompt = num(signals["mean_prompt_tokens"]);
  add("Mean prompt tokens", prompt === null ? null : formatNumber(Math.round(prompt)));
  const completion = num(signals["mean_completion_tokens"]);
  add("Mean completion tokens", completion === null ? null : formatNumber(Math.round(completion)));
  const errorRate = num(signals["error_rate"]);
  add("Error rate", errorRate === null ? null : formatPercent(errorRate, 2));
  const p95 = num(signals["p95_latency_ms"]);
  add("P95 latency", p95 === null ? null : formatMs(p95));
  const dominant = str(signals["dominant_task_type"]);
  const share = num(signals["dominant_share"]);
  if (dominant) add("Dominant task", share === null ? dominant : `${dominant} (${formatPercent(share, 0)} of requests)`);
  add("Rule", str(details["rule"]));
  if (typeof details["heuristics_agree"] === "boolean") {
    const misses = Array.isArray(details["heuristic_misses"])
      ? (details["heuristic_misses"] as unknown[]).filter((m): m is string => typeof m === "string")
      : [];
    add(
      "Heuristics",
      details["heuristics_agree"] ? "all agree" : `not all agree${misses.length ? `: ${misses.join(", ")}` : ""}`,
    );
  }
  const downgrade = obj(details["downgrade"]);
  const steps = num(downgrade?.["steps"]) ?? rec.steps;
  add("Steps down", String(steps));
  const unpriced = num(signals["unpriced_requests"]);
  if (unpriced) add("Unpriced requests", formatNumber(unpriced));
  const coverage = obj(details["coverage"]);
  if (coverage && coverage["scaled_to_30_days"] === true) {
    const days = num(coverage["days"]);
    add("Coverage", `saving projected to 30 days from ${days === null ? "less than 30" : days} days of traffic`);
  }
  return out;
}

/** The Rules page link that opens the create form pre-filled from `rec`. */
export function ruleLink(orgId: string, rec: Recommendation): string {
  const params = new URLSearchParams({ new: "1", feature: rec.feature });
  if (rec.task_type) params.set("task", rec.task_type);
  params.set("provider", rec.provider);
  params.set("model", rec.current_model);
  params.set("target_provider", rec.provider);
  params.set("target_model", rec.recommended_model);
  params.set("name", `${rec.feature}: ${rec.current_model} → ${rec.recommended_model}`);
  return `/orgs/${orgId}/rules?${params.toString()}`;
}

function confidenceClass(confidence: string): string {
  if (confidence === "high") return "badge badge-good";
  if (confidence === "medium") return "badge badge-warning";
  return "badge badge-neutral";
}

export default function RecommendationsPage() {
  const { orgId, can } = useOrg();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [searchParams, setSearchParams] = useSearchParams();
  const raw = searchParams.get("status");
  const status: StatusFilter = isStatus(raw) ? raw : "open";

  const list = useQuery({
    queryKey: ["org", orgId, "recommendations", status],
    queryFn: ({ signal }) =>
      apiFetch<RecommendationList>(`/api/orgs/${orgId}/recommendations`, {
        query: { status: status === "all" ? undefined : status },
        signal,
      }),
  });

  const dismiss = useMutation({
    mutationFn: (rec: Recommendation) =>
      apiFetch<unknown>(`/api/orgs/${orgId}/recommendations/${rec.id}/dismiss`, { method: "POST" }),
    onSettled: () => queryClient.invalidateQueries({ queryKey: ["org", orgId, "recommendations"] }),
  });

  function setStatus(next: StatusFilter) {
    const params = new URLSearchParams(searchParams);
    if (next === "open") params.delete("status");
    else params.set("status", next);
    setSearchParams(params, { replace: true });
  }

  const recs = list.data?.recommendations ?? [];
  const totalSaving = recs.filter((r) => r.status === "open").reduce((sum, r) => sum + monthlySaving(r), 0);

  return (
    <div>
      <PageHeader
        title="Recommendations"
        actions={
          <div className="field">
            <label htmlFor="recommendations-status">Status</label>
            <select
              id="recommendations-status"
              value={status}
              onChange={(e) => setStatus(e.target.value as StatusFilter)}
            >
              <option value="open">Open</option>
              <option value="dismissed">Dismissed</option>
              <option value="all">All</option>
            </select>
          </div>
        }
      />
      <p className={`muted ${f.intro}`}>
        Cheaper models that can likely serve a feature's traffic, from the last 30 days,
        computed daily. Check the evidence, preview a rule, then apply it.
      </p>

      {dismiss.isError && (
        <p className={f.formError} role="alert">
          Not dismissed: {errorMessage(dismiss.error)}
        </p>
      )}

      {list.isPending ? (
        <Loading label="Loading recommendations" />
      ) : list.isError ? (
        <ErrorState error={list.error} onRetry={() => void list.refetch()} />
      ) : recs.length === 0 ? (
        <EmptyState
          title={status === "dismissed" ? "No dismissed recommendations" : "No recommendations yet"}
        >
          <p>
            Recommendations appear once a feature has sent 500 or more requests to one
            model within 30 days and a cheaper model of the same provider would likely
            serve it. They are computed daily.
          </p>
        </EmptyState>
      ) : (
        <>
          {status !== "dismissed" && totalSaving > 0 && (
            <p className={styles.total}>
              Estimated saving of the open recommendations:{" "}
              <strong>{formatUsd(totalSaving)}</strong> a month
            </p>
          )}
          <ul className={styles.cards} aria-label="Recommendations">
            {recs.map((rec) => (
              <li key={rec.id} className={`card ${styles.card}`} aria-labelledby={`rec-${rec.id}`}>
                <div className={styles.head}>
                  <h2 id={`rec-${rec.id}`} className={styles.title}>
                    {rec.feature}
                    {rec.task_type && <span className="badge badge-neutral">{rec.task_type}</span>}
                  </h2>
                  <span className={confidenceClass(rec.confidence)}>{rec.confidence} confidence</span>
                  {rec.status !== "open" && <span className="badge badge-neutral">{rec.status}</span>}
                </div>
                <p className={styles.models}>
                  <span className="muted">{rec.provider}</span>{" "}
                  <code>{rec.current_model}</code> <span aria-label="to">→</span>{" "}
                  <code>{rec.recommended_model}</code>
                </p>
                <div className={styles.money}>
                  <div>
                    <span className={styles.moneyLabel}>Estimated saving</span>
                    <span>
                      <strong className={styles.saving}>{formatUsd(monthlySaving(rec))}</strong>
                      <span className="muted"> / month</span>
                    </span>
                  </div>
                  <div>
                    <span className={styles.moneyLabel}>Cost, 30 days</span>
                    <span>
                      {formatUsd(rec.current_cost_usd)} now → {formatUsd(rec.projected_cost_usd)} projected
                    </span>
                  </div>
                </div>
                <p className={styles.rationale}>{rec.rationale}</p>
                <div className={styles.evidence}>
                  <h3 className={styles.evidenceTitle}>Evidence</h3>
                  <dl className={styles.evidenceList}>
                    {evidenceOf(rec).map((e) => (
                      <div key={e.label}>
                        <dt>{e.label}</dt>
                        <dd>{e.value}</dd>
                      </div>
                    ))}
                    <div>
                      <dt>Window</dt>
                      <dd>
                        {formatTime(rec.window_start)} – {formatTime(rec.window_end)}
                      </dd>
                    </div>
                  </dl>
                </div>
                {rec.status === "open" && can("member") && (
                  <div className={`${f.actions} ${styles.cardActions}`}>
                    {can("admin") && (
                      <button
                        type="button"
                        className="button button-primary"
                        onClick={() => navigate(ruleLink(orgId, rec))}
                      >
                        Create a rule
                      </button>
                    )}
                    {can("member") && (
                      <button
                        type="button"
                        className="button"
                        disabled={dismiss.isPending && dismiss.variables?.id === rec.id}
                        onClick={() => dismiss.mutate(rec)}
                      >
                        Dismiss
                      </button>
                    )}
                  </div>
                )}
              </li>
            ))}
          </ul>
        </>
      )}
    </div>
  );
}
