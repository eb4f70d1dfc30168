import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Link } from "react-router-dom";
import { apiFetch, errorMessage } from "../../api/client";
import type { Anomaly } from "../../api/types";
import { useOrg } from "../../auth/useOrg";
import { Badge } from "../../components";
import { formatNumber, formatTime } from "../../format";
import {
  anomalyDetails,
  formatKindValue,
  kindLabel,
  ratioText,
  scopeText,
  severityTone,
  statusTone,
} from "./anomaly";
import { RecentChart } from "./RecentChart";

function windowText(a: Anomaly): string {
  return `${formatTime(a.window_start)} – ${formatTime(a.window_end)}`;
}

/** One anomaly: what, where, when, observed against baseline, the recent hours, Dismiss. */
export function AnomalyCard({ anomaly, large = false }: { anomaly: Anomaly; large?: boolean }) {
  const { orgId, can } = useOrg();
  const queryClient = useQueryClient();
  const details = anomalyDetails(anomaly);
  const dismiss = useMutation({
    mutationFn: () =>
      apiFetch<Anomaly>(`/api/orgs/${orgId}/anomalies/${anomaly.id}/dismiss`, { method: "POST" }),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["org", orgId, "anomalies"] }),
  });
  const title = `${kindLabel(anomaly.kind)} anomaly`;
  const ratio = ratioText(anomaly);
  const Heading = large ? "h2" : "h3";
  return (
    <article className={`card anomaly-card${large ? " large" : ""}`} aria-label={`${title}: ${scopeText(anomaly)}`}>
      <div className="anomaly-title">
        <Heading>
          {large ? (
            title
          ) : (
            <Link to={`/orgs/${orgId}/anomalies/${anomaly.id}`}>{title}</Link>
          )}
        </Heading>
        <Badge tone={severityTone(anomaly.severity)}>{anomaly.severity}</Badge>
        <Badge tone={statusTone(anomaly.status)}>{anomaly.status}</Badge>
        {details.direction === "down" && <Badge tone="info">below baseline</Badge>}
      </div>
      <p className="muted" style={{ margin: 0 }}>
        {scopeText(anomaly)} · {windowText(anomaly)}
      </p>
      <dl className="anomaly-figures">
        <div>
          <dt>Observed</dt>
          <dd>{formatKindValue(anomaly.kind, anomaly.observed)}</dd>
        </div>
        <div>
          <dt>Baseline</dt>
          <dd>
            {formatKindValue(anomaly.kind, anomaly.baseline)}
            {anomaly.baseline_stddev !== null && (
              <span className="muted"> ± {formatKindValue(anomaly.kind, anomaly.baseline_stddev)}</span>
            )}
          </dd>
        </div>
        {ratio && (
          <div>
            <dt>Change</dt>
            <dd>{ratio}</dd>
          </div>
        )}
        {typeof details.z === "number" && (
          <div>
            <dt>Deviation</dt>
            <dd>{formatNumber(Math.round(details.z * 10) / 10)} σ</dd>
          </div>
        )}
        {large && anomaly.threshold !== null && (
          <div>
            <dt>Threshold</dt>
            <dd>{formatKindValue(anomaly.kind, anomaly.threshold)}</dd>
          </div>
        )}
        {large && typeof details.window_requests === "number" && (
          <div>
            <dt>Requests in window</dt>
            <dd>{formatNumber(details.window_requests)}</dd>
          </div>
        )}
      </dl>
      {details.recent && details.recent.length > 0 && (
        <RecentChart
          kind={anomaly.kind}
          recent={details.recent}
          windowStart={anomaly.window_start}
          windowEnd={anomaly.window_end}
          baseline={anomaly.baseline}
          large={large}
        />
      )}
      {large && details.pairs && details.pairs.length > 0 && (
        <div>
          <h3>New model pairs in the window</h3>
          <ul>
            {details.pairs.map((p) => (
              <li key={`${p.provider}/${p.model}/${p.response_model}`}>
                {p.provider}: <code>{p.model}</code> answered by <code>{p.response_model}</code> (
                {formatNumber(p.requests)} requests)
              </li>
            ))}
          </ul>
        </div>
      )}
      {large && (
        // When it was detected, alerted, resolved: said once, in the page's own font.
        <dl className="anomaly-meta" aria-label="Detection">
          <div>
            <dt>Detected</dt>
            <dd>{formatTime(anomaly.detected_at)}</dd>
          </div>
          <div>
            <dt>Alert sent</dt>
            <dd>{anomaly.notified_at ? formatTime(anomaly.notified_at) : "not yet"}</dd>
          </div>
          <div>
            <dt>Resolved</dt>
            <dd>{anomaly.resolved_at ? formatTime(anomaly.resolved_at) : "—"}</dd>
          </div>
          {typeof details.baseline_hours === "number" && (
            <div>
              <dt>Baseline hours</dt>
              <dd>{formatNumber(details.baseline_hours)}</dd>
            </div>
          )}
          {details.sigma_floor_applied !== undefined && (
            <div>
              <dt>Deviation floor applied</dt>
              <dd>{details.sigma_floor_applied ? "yes" : "no"}</dd>
            </div>
          )}
        </dl>
      )}
      <div className="anomaly-actions">
        {/* The full view says "Detected" in its details above; the list card says it here. */}
        {large ? <span /> : <span className="muted">Detected {formatTime(anomaly.detected_at)}</span>}
        <span className="row">
          {!large && (
            <Link className="button button-small" to={`/orgs/${orgId}/anomalies/${anomaly.id}`}>
              Details
            </Link>
          )}
          {can("member") && anomaly.status === "open" && (
            <button
              type="button"
              className="button button-small"
              disabled={dismiss.isPending}
              onClick={() => dismiss.mutate()}
            >
              {dismiss.isPending ? "Dismissing…" : "Dismiss"}
            </button>
          )}
        </span>
      </div>
      {dismiss.isError && (
        <div className="error-state" role="alert">
          <p>Could not dismiss: {errorMessage(dismiss.error)}</p>
        </div>
      )}
    </article>
  );
}
