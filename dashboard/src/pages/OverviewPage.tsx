import { useQuery } from "@tanstack/react-query";
import type { ComponentProps } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { apiFetch } from "../api/client";
import type { Anomaly, Summary, SummaryData, SummaryPipeline } from "../api/types";
import { useOrg } from "../auth/useOrg";
import { ClientSnippet, EmptyState, ErrorState, Loading, Notice, PageHeader, StatCard } from "../components";
import {
  formatCompact,
  formatMs,
  formatNumber,
  formatPercent,
  formatRelative,
  formatTime,
  formatUsd,
} from "../format";
import { anomaliesQuery, kindLabel, overlaps, scopeText, severityTone } from "./anomalies/anomaly";
import { BreakdownTable, ProviderTable } from "./overview/BreakdownTable";
import { SeriesChart } from "./overview/SeriesChart";
import {
  PERIOD_LABEL,
  PERIODS,
  STALE_AFTER_MS,
  coveredMinutes,
  parsePeriod,
  summaryData,
  type PeriodKey,
} from "./overview/summary";
import { Badge } from "../components";

function PeriodSwitcher({ period, onChange }: { period: PeriodKey; onChange: (p: PeriodKey) => void }) {
  return (
    <div className="segmented" role="group" aria-label="Period">
      {PERIODS.map((p) => (
        <button key={p} type="button" aria-pressed={p === period} onClick={() => onChange(p)}>
          {PERIOD_LABEL[p]}
        </button>
      ))}
    </div>
  );
}

/** Shown whenever proxies dropped events in the period: figures may be short. */
export function DegradationBanner({ pipeline }: { pipeline: SummaryPipeline | null }) {
  if (!pipeline || pipeline.events_dropped <= 0) return null;
  const instances = Object.entries(pipeline.dropped_by_instance).filter(([, n]) => n > 0);
  return (
    <div className="notice notice-danger" role="alert">
      <strong className="notice-title">observability degraded — data may be incomplete</strong>
      <div className="notice-body">
        {formatNumber(pipeline.events_dropped)} request{" "}
        {pipeline.events_dropped === 1 ? "event was" : "events were"} dropped by{" "}
        {instances.length === 0 ? (
          "the proxies"
        ) : (
          <>
            proxy {instances.length === 1 ? "instance" : "instances"}{" "}
            {instances.map(([name, n], i) => (
              <span key={name}>
                {i > 0 && ", "}
                <code>{name}</code> ({formatNumber(n)})
              </span>
            ))}
          </>
        )}{" "}
        in this period ({formatPercent(pipeline.drop_rate, 2)} of events), so these figures
        undercount. Check the proxies' <code>/health</code> and the broker.
      </div>
    </div>
  );
}

function StaleNotice({ computedAt }: { computedAt: string | null }) {
  if (computedAt === null) {
    return (
      <Notice tone="warning" role="status" title="no summary yet — the scheduler computes them every minute">
        Figures read zero until its first run; if this stays, check that the scheduler process
        is running.
      </Notice>
    );
  }
  const age = Date.now() - Date.parse(computedAt);
  if (!(age > STALE_AFTER_MS)) return null;
  return (
    <Notice
      tone="warning"
      role="status"
      title={`summaries are stale: last computed ${formatTime(computedAt)} (${formatRelative(computedAt)})`}
    >
      The scheduler normally refreshes them every minute; check that it is running.
    </Notice>
  );
}

function BaselineNotice({ data }: { data: SummaryData }) {
  const d = data.anomaly_detection;
  if (d.active || d.active_in_hours === null) return null;
  const hours = d.active_in_hours;
  return (
    <Notice tone="info" role="status" title={`building baseline — anomaly detection active in about ${hours} ${hours === 1 ? "hour" : "hours"}`}>
      Anomaly detection needs 48 hours of traffic to learn what is normal for this organisation.
    </Notice>
  );
}

function GettingStarted({ orgId }: { orgId: string }) {
  return (
    <EmptyState title="No requests yet">
      <p>
        Lectr sees your traffic once your applications send it through the proxy. Change your
        SDK's base URL to your proxy URL and add your Lectr key as a header; the first requests
        show up here within a minute or two.
      </p>
      <ClientSnippet orgId={orgId} />
      <p className="muted" style={{ marginTop: 12 }}>
        Tag requests with <code>X-Lectr-Feature</code> (and <code>X-Lectr-Task</code>) to see
        cost and latency per feature and to get model recommendations.
      </p>
    </EmptyState>
  );
}

function Stats({ summary, data, period }: { summary: Summary; data: SummaryData; period: PeriodKey }) {
  const minutes = coveredMinutes(summary, period);
  const perMinute = data.requests / minutes;
  const perHour = data.cost_usd / (minutes / 60);
  const threshold = data.p95_threshold_ms;
  const p95 = data.latency_p95_ms;
  const over = p95 !== null && threshold !== null && (data.p95_over_threshold || p95 > threshold);
  return (
    <div className="grid-stats">
      <StatCard
        label="Requests"
        value={formatNumber(data.requests)}
        detail={`${formatNumber(Math.round(perMinute * 100) / 100)} per minute`}
      />
      <StatCard
        label="Cost"
        value={formatUsd(data.cost_usd)}
        detail={
          <>
            {formatUsd(perHour)} per hour
            {data.unpriced_requests > 0 && (
              <div className="muted">{formatNumber(data.unpriced_requests)} requests without a known price</div>
            )}
          </>
        }
      />
      <StatCard
        label="Tokens"
        value={`${formatCompact(data.input_tokens)} / ${formatCompact(data.output_tokens)}`}
        detail={
          <>
            {formatNumber(data.input_tokens)} input · {formatNumber(data.output_tokens)} output
            {data.tokeniser_share > 0 && (
              <div>
                <Badge tone="warning">estimate</Badge>{" "}
                <span className="muted">
                  token counts from the tokeniser are estimates ({formatPercent(data.tokeniser_share, 1)} of
                  requests)
                </span>
              </div>
            )}
          </>
        }
      />
      <StatCard
        label="Error rate"
        value={formatPercent(data.error_rate)}
        tone={data.errors > 0 ? "warning" : undefined}
        detail={`${formatNumber(data.errors)} ${data.errors === 1 ? "failure" : "failures"}`}
      />
      <StatCard
        label="p95 latency"
        value={formatMs(p95)}
        tone={p95 === null || threshold === null ? undefined : over ? "danger" : "good"}
        detail={
          p95 === null ? (
            "no requests"
          ) : threshold === null ? (
            "no target set"
          ) : (
            <>
              <span className="status-text">{over ? "over target" : "within target"}</span> (target{" "}
              {formatMs(threshold)})
            </>
          )
        }
      />
      <StatCard
        label="Mean TTFB"
        value={formatMs(data.ttfb_mean_ms)}
        detail={
          data.streaming_share > 0
            ? `time to first byte · ${formatPercent(data.streaming_share, 0)} streamed`
            : "time to first byte"
        }
      />
    </div>
  );
}

/** One "<title> over time" card: the series chart of one metric. */
function OverTime(props: ComponentProps<typeof SeriesChart>) {
  const per = props.step === "day" ? "day" : "hour";
  return (
    <section className="card" aria-label={`${props.title} over time`}>
      <div className="card-header">
        <h2>{props.title} over time</h2>
        <span className="muted">per {per}</span>
      </div>
      <SeriesChart {...props} />
    </section>
  );
}

function AnomalyLinks({ orgId, anomalies }: { orgId: string; anomalies: Anomaly[] }) {
  if (anomalies.length === 0) return null;
  return (
    <section className="card section" aria-label="Anomalies in this period">
      <div className="card-header">
        <h2>Anomalies in this period</h2>
        <Link to={`/orgs/${orgId}/anomalies`}>All anomalies</Link>
      </div>
      <ul className="stack" style={{ listStyle: "none", margin: 0, padding: 0, gap: 6 }}>
        {anomalies.map((a) => (
          <li key={a.id} className="row">
            <Badge tone={severityTone(a.severity)}>{a.severity}</Badge>
            <Link to={`/orgs/${orgId}/anomalies/${a.id}`}>
              {kindLabel(a.kind)} anomaly · {scopeText(a)}
            </Link>
            <span className="muted">{formatTime(a.window_start)}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}

export default function OverviewPage() {
  const { orgId } = useOrg();
  const [params, setParams] = useSearchParams();
  const period = parsePeriod(params.get("period"));
  const summary = useQuery({
    queryKey: ["org", orgId, "summary", period],
    queryFn: ({ signal }) =>
      apiFetch<Summary>(`/api/orgs/${orgId}/summary`, { query: { period }, signal }),
    refetchInterval: 60_000,
  });
  const anomalies = useQuery({ ...anomaliesQuery(orgId, "all"), refetchInterval: 60_000 });

  const setPeriod = (p: PeriodKey) => {
    const next = new URLSearchParams(params);
    if (p === "24h") next.delete("period");
    else next.set("period", p);
    setParams(next, { replace: true });
  };

  const header = <PageHeader title="Overview" actions={<PeriodSwitcher period={period} onChange={setPeriod} />} />;
  if (summary.isPending) {
    return (
      <>
        {header}
        <Loading label="Loading the summary…" />
      </>
    );
  }
  if (summary.isError) {
    return (
      <>
        {header}
        <ErrorState error={summary.error} onRetry={() => void summary.refetch()} />
      </>
    );
  }
  const data = summaryData(summary.data);
  const noTrafficEver = data.requests === 0 && data.anomaly_detection.data_since === null;
  const start = summary.data.window_start ? Date.parse(summary.data.window_start) : null;
  const end = summary.data.window_end ? Date.parse(summary.data.window_end) : null;
  const inPeriod =
    start !== null && end !== null ? (anomalies.data?.anomalies ?? []).filter((a) => overlaps(a, start, end)) : [];
  const costAnomalies = inPeriod.filter((a) => a.kind === "cost");
  const otherAnomalies = inPeriod.filter((a) => a.kind !== "cost");
  // What both charts share.
  const chart = {
    orgId,
    points: data.series,
    step: data.series_step,
    multiDay: period !== "24h",
    computedAt: summary.data.computed_at,
  };

  return (
    <>
      {header}
      <DegradationBanner pipeline={data.pipeline} />
      <StaleNotice computedAt={summary.data.computed_at} />
      <BaselineNotice data={data} />
      {noTrafficEver ? (
        <GettingStarted orgId={orgId} />
      ) : (
        <>
          {summary.data.window_start && summary.data.window_end && (
            <p className="muted" style={{ marginTop: -6 }}>
              {formatTime(summary.data.window_start)} – {formatTime(summary.data.window_end)}
              {summary.data.computed_at && <> · updated {formatRelative(summary.data.computed_at)}</>}
            </p>
          )}
          {data.requests === 0 && (
            <Notice tone="info" role="status" title={`No requests in the last ${PERIOD_LABEL[period]}`}>
              Choose a longer period to see earlier traffic.
            </Notice>
          )}
          <Stats summary={summary.data} data={data} period={period} />
          <div className="grid-2 section">
            <OverTime
              title="Cost"
              metric="cost_usd"
              anomalies={costAnomalies}
              color="#2f5bd3"
              format={(v) => formatUsd(v)}
              tick={(v) => formatUsd(v)}
              {...chart}
            />
            <OverTime
              title="Requests"
              metric="requests"
              anomalies={otherAnomalies}
              color="#0f8b8d"
              format={(v) => formatNumber(v)}
              tick={(v) => formatCompact(v)}
              {...chart}
            />
          </div>
          <AnomalyLinks orgId={orgId} anomalies={inPeriod} />
          <div className="section">
            <ProviderTable entries={data.by_provider} />
          </div>
          <div className="grid-breakdowns section">
            <BreakdownTable title="Top models" keyLabel="Model" entries={data.by_model} />
            <BreakdownTable title="Top features" keyLabel="Feature" entries={data.by_feature} />
            <BreakdownTable title="Task types" keyLabel="Task" entries={data.by_task} />
          </div>
        </>
      )}
    </>
  );
}
