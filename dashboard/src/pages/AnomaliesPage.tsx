import { useQuery } from "@tanstack/react-query";
import { useSearchParams } from "react-router-dom";
import { useOrg } from "../auth/useOrg";
import { EmptyState, ErrorState, Loading, PageHeader } from "../components";
import { AnomalyCard } from "./anomalies/AnomalyCard";
import { ANOMALY_STATUSES, anomaliesQuery, parseAnomalyStatus } from "./anomalies/anomaly";

const STATUS_LABEL = { open: "Open", resolved: "Resolved", dismissed: "Dismissed", all: "All" } as const;

export default function AnomaliesPage() {
  const { orgId } = useOrg();
  const [params, setParams] = useSearchParams();
  const status = parseAnomalyStatus(params.get("status"));
  const anomalies = useQuery({ ...anomaliesQuery(orgId, status), refetchInterval: 60_000 });

  const filter = (
    <div className="segmented" role="group" aria-label="Status">
      {ANOMALY_STATUSES.map((s) => (
        <button
          key={s}
          type="button"
          aria-pressed={s === status}
          onClick={() => setParams(s === "all" ? {} : { status: s }, { replace: true })}
        >
          {STATUS_LABEL[s]}
        </button>
      ))}
    </div>
  );

  return (
    <>
      <PageHeader
        title="Anomalies"
        subtitle="Hours judged unusual against the 7 days before them, per organisation and per feature."
        actions={filter}
      />
      {anomalies.isPending ? (
        <Loading label="Loading anomalies…" />
      ) : anomalies.isError ? (
        <ErrorState error={anomalies.error} onRetry={() => void anomalies.refetch()} />
      ) : anomalies.data.anomalies.length === 0 ? (
        <EmptyState title={status === "all" ? "No anomalies" : `No ${status} anomalies`}>
          <p className="muted">
            Every 5 minutes Lectr compares the last full hour's cost, latency, error rate,
            traffic and model mix with the week before it; what stands out shows up here and
            is emailed to the organisation's alert recipients.
          </p>
        </EmptyState>
      ) : (
        <div className="grid-2">
          {anomalies.data.anomalies.map((a) => (
            <AnomalyCard key={a.id} anomaly={a} />
          ))}
        </div>
      )}
    </>
  );
}
