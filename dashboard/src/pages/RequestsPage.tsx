import { PageHeader } from "../components";
import { RequestLogView } from "./requests/RequestLogView";

export default function RequestsPage() {
  return (
    <>
      <PageHeader
        title="Requests"
        subtitle="Every request through the proxy, newest first: metadata only, never prompts or answers."
      />
      <RequestLogView kind="requests" />
    </>
  );
}
