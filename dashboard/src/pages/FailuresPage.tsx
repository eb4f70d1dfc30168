import { PageHeader } from "../components";
import { RequestLogView } from "./requests/RequestLogView";

export default function FailuresPage() {
  return (
    <>
      <PageHeader
        title="Failures"
        subtitle="Requests that failed (status 400 or above, no response, or an error category), newest first."
      />
      <RequestLogView kind="failures" />
    </>
  );
}
