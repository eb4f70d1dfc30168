import { useQuery } from "@tanstack/react-query";
import { Link, useParams } from "react-router-dom";
import { useOrg } from "../auth/useOrg";
import { EmptyState, ErrorState, Loading, PageHeader } from "../components";
import { AnomalyCard } from "./anomalies/AnomalyCard";
import { anomaliesQuery } from "./anomalies/anomaly";

/** One anomaly (alert emails link here): found in the org's list. */
export default function AnomalyPage() {
  const { orgId } = useOrg();
  const { anomalyId } = useParams();
  const anomalies = useQuery(anomaliesQuery(orgId, "all"));
  const back = (
    <Link className="button" to={`/orgs/${orgId}/anomalies`}>
      All anomalies
    </Link>
  );
  const found = anomalies.data?.anomalies.find((a) => a.id === anomalyId);
  return (
    <>
      <PageHeader title="Anomaly" actions={back} />
      {anomalies.isPending ? (
        <Loading label="Loading the anomaly…" />
      ) : anomalies.isError ? (
        <ErrorState error={anomalies.error} onRetry={() => void anomalies.refetch()} />
      ) : !found ? (
        <EmptyState title="Anomaly not found">
          <p className="muted">
            It does not exist in this organisation, or it is older than the 100 most recent
            anomalies the API lists.
          </p>
          <p>
            <Link to={`/orgs/${orgId}/anomalies`}>See the organisation's anomalies</Link>
          </p>
        </EmptyState>
      ) : (
        <AnomalyCard anomaly={found} large />
      )}
    </>
  );
}
