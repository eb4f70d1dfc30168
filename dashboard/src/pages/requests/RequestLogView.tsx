import { useInfiniteQuery } from "@tanstack/react-query";
import { createColumnHelper, type ColumnDef } from "@tanstack/react-table";
import { useEffect, useState, type FormEvent } from "react";
import { useSearchParams } from "react-router-dom";
import { apiFetch } from "../../api/client";
import type { FailurePage, RequestLog, RequestPage } from "../../api/types";

import { useOrg } from "../../auth/useOrg";
import { Badge, DataTable, EmptyState, ErrorState, Loading } from "../../components";
import { formatMs, formatNumber, formatTime, formatUsd } from "../../format";
import {
  FILTER_KEYS,
  PROVIDERS,
  STATUSES,
  TASKS,
  isoToLocalInput,
  localInputToIso,
  readFilters,
  type Filters,
} from "./filters";

const PAGE_SIZE = 50;
const column = createColumnHelper<RequestLog>();

function statusClass(row: RequestLog): string {
  if (row.status_code === 0) return "status-err";
  if (row.status_code >= 500) return "status-5xx";
  if (row.status_code >= 400) return "status-4xx";
  if (row.error_category) return "status-err";
  return "status-2xx";
}

function StatusCell({ row }: { row: RequestLog }) {
  return <span className={statusClass(row)}>{row.status_code === 0 ? "no response" : row.status_code}</span>;
}

function modelText(row: RequestLog): string {
  const sent = row.actual_model ?? row.requested_model;
  if (row.requested_model && sent && sent !== row.requested_model) return `${row.requested_model} → ${sent}`;
  return sent ?? "unknown";
}

function tokens(row: RequestLog): string {
  if (row.input_tokens === null && row.output_tokens === null) return "—";
  return `${formatNumber(row.input_tokens)} / ${formatNumber(row.output_tokens)}`;
}

const timeColumn = column.accessor("created_at", { header: "Time", cell: (i) => formatTime(i.getValue()) });
const statusColumn = column.display({ id: "status", header: "Status", cell: (i) => <StatusCell row={i.row.original} /> });
const providerColumn = column.accessor("provider", { header: "Provider" });
const modelColumn = column.accessor((r) => modelText(r), { id: "model", header: "Model" });
const featureColumn = column.accessor("feature", { header: "Feature" });
const latencyColumn = column.accessor("latency_ms", {
  header: "Latency",
  cell: (i) => formatMs(i.getValue()),
  meta: { className: "num" },
});

const REQUEST_COLUMNS: ColumnDef<RequestLog, any>[] = [
  timeColumn,
  statusColumn,
  providerColumn,
  modelColumn,
  featureColumn,
  column.accessor("task_type", { header: "Task", cell: (i) => i.getValue() ?? <span className="muted">untagged</span> }),
  latencyColumn,
  column.accessor("ttfb_ms", { header: "TTFB", cell: (i) => formatMs(i.getValue()), meta: { className: "num" } }),
  column.accessor((r) => tokens(r), { id: "tokens", header: "Tokens in / out", meta: { className: "num" } }),
  column.accessor("cost_usd", { header: "Cost", cell: (i) => formatUsd(i.getValue()), meta: { className: "num" } }),
  column.accessor("streaming", { header: "Stream", cell: (i) => (i.getValue() ? "yes" : "no") }),
] as ColumnDef<RequestLog, any>[];

const FAILURE_COLUMNS: ColumnDef<RequestLog, any>[] = [
  timeColumn,
  statusColumn,
  column.accessor("error_category", {
    header: "Error category",
    cell: (i) => (i.getValue() ? <Badge tone="danger">{i.getValue()}</Badge> : <span className="muted">—</span>),
  }),
  column.accessor("error_source", { header: "Source", cell: (i) => i.getValue() ?? "—" }),
  providerColumn,
  modelColumn,
  featureColumn,
  latencyColumn,
] as ColumnDef<RequestLog, any>[];

/** Every field of a request log row, for its expanded view. */
const DETAIL_FIELDS: { key: keyof RequestLog; label: string; render?: (r: RequestLog) => string }[] = [
  { key: "id", label: "Request id" },
  { key: "created_at", label: "Created", render: (r) => `${formatTime(r.created_at)} (${r.created_at})` },
  { key: "completed_at", label: "Completed", render: (r) => `${formatTime(r.completed_at)} (${r.completed_at})` },
  { key: "status_code", label: "Status code", render: (r) => (r.status_code === 0 ? "0 (no response)" : String(r.status_code)) },
  { key: "error_category", label: "Error category" },
  { key: "error_source", label: "Error source" },
  { key: "provider", label: "Provider" },
  { key: "provider_unknown", label: "Provider unknown" },
  { key: "endpoint", label: "Endpoint" },
  { key: "requested_model", label: "Requested model" },
  { key: "actual_model", label: "Sent model" },
  { key: "response_model", label: "Answering model" },
  { key: "streaming", label: "Streaming" },
  { key: "latency_ms", label: "Latency", render: (r) => formatMs(r.latency_ms) },
  { key: "ttfb_ms", label: "Time to first byte", render: (r) => formatMs(r.ttfb_ms) },
  { key: "input_tokens", label: "Input tokens", render: (r) => formatNumber(r.input_tokens) },
  { key: "output_tokens", label: "Output tokens", render: (r) => formatNumber(r.output_tokens) },
  { key: "cached_tokens", label: "Cached tokens", render: (r) => formatNumber(r.cached_tokens) },
  { key: "token_source", label: "Token source" },
  { key: "cost_usd", label: "Cost", render: (r) => (r.cost_usd === null ? "— (no known price)" : formatUsd(r.cost_usd)) },
  { key: "feature", label: "Feature" },
  { key: "task_type", label: "Task type" },
  { key: "rule_id", label: "Rule applied" },
  { key: "skipped_rule_id", label: "Rule skipped" },
  { key: "api_key_id", label: "API key id" },
  { key: "proxy_instance", label: "Proxy instance" },
  { key: "org_id", label: "Organisation id" },
];

export function RequestDetails({ row }: { row: RequestLog }) {
  return (
    <dl className="details-grid" aria-label="Request details">
      {DETAIL_FIELDS.map((f) => {
        const raw = row[f.key];
        const text = f.render ? f.render(row) : raw === null || raw === undefined ? "—" : String(raw);
        return (
          <div key={f.key}>
            <dt>{f.label}</dt>
            <dd>{text}</dd>
          </div>
        );
      })}
    </dl>
  );
}

function FilterForm({ filters, withStatus, onApply }: { filters: Filters; withStatus: boolean; onApply: (f: Filters) => void }) {
  const [draft, setDraft] = useState<Filters>(filters);
  const [since, setSince] = useState(isoToLocalInput(filters.since));
  const [until, setUntil] = useState(isoToLocalInput(filters.until));
  const key = JSON.stringify(filters);
  useEffect(() => {
    setDraft(filters);
    setSince(isoToLocalInput(filters.since));
    setUntil(isoToLocalInput(filters.until));
    // Re-sync when the URL's filters change (back/forward, Clear).
  }, [key]);
  const set = (k: keyof Filters) => (e: { target: { value: string } }) =>
    setDraft((d) => ({ ...d, [k]: e.target.value }));

  function submit(event: FormEvent) {
    event.preventDefault();
    onApply({
      ...draft,
      since: localInputToIso(since) ?? undefined,
      until: localInputToIso(until) ?? undefined,
    });
  }
  return (
    <form className="card filters" onSubmit={submit} aria-label="Filters">
      <div className="field field-wide">
        <label htmlFor="f-since">Since</label>
        <input id="f-since" type="datetime-local" value={since} onChange={(e) => setSince(e.target.value)} />
      </div>
      <div className="field field-wide">
        <label htmlFor="f-until">Until</label>
        <input id="f-until" type="datetime-local" value={until} onChange={(e) => setUntil(e.target.value)} />
      </div>
      <div className="field">
        <label htmlFor="f-feature">Feature</label>
        <input id="f-feature" type="text" value={draft.feature ?? ""} onChange={set("feature")} placeholder="any" />
      </div>
      <div className="field">
        <label htmlFor="f-model">Model</label>
        <input id="f-model" type="text" value={draft.model ?? ""} onChange={set("model")} placeholder="any" />
      </div>
      <div className="field">
        <label htmlFor="f-provider">Provider</label>
        <select id="f-provider" value={draft.provider ?? ""} onChange={set("provider")}>
          <option value="">Any</option>
          {PROVIDERS.map((p) => (
            <option key={p} value={p}>
              {p}
            </option>
          ))}
        </select>
      </div>
      {withStatus && (
        <div className="field">
          <label htmlFor="f-status">Status</label>
          <select id="f-status" value={draft.status ?? ""} onChange={set("status")}>
            <option value="">Any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </div>
      )}
      <div className="field">
        <label htmlFor="f-task">Task</label>
        <select id="f-task" value={draft.task ?? ""} onChange={set("task")}>
          <option value="">Any</option>
          {TASKS.map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="f-streaming">Streaming</label>
        <select id="f-streaming" value={draft.streaming ?? ""} onChange={set("streaming")}>
          <option value="">Any</option>
          <option value="true">Streaming</option>
          <option value="false">Not streaming</option>
        </select>
      </div>
      <div className="filter-actions">
        <button type="submit" className="button button-primary">
          Apply filters
        </button>
        <button type="button" className="button button-ghost" onClick={() => onApply({})}>
          Clear
        </button>
      </div>
    </form>
  );
}

/** The request log (`/requests`) or its failures (`/failures`), filtered from the URL. */
export function RequestLogView({ kind }: { kind: "requests" | "failures" }) {
  const { orgId } = useOrg();
  const [params, setParams] = useSearchParams();
  const withStatus = kind === "requests";
  const filters = readFilters(params, withStatus);
  const query = useInfiniteQuery({
    queryKey: ["org", orgId, kind, filters],
    initialPageParam: null as string | null,
    queryFn: async ({ pageParam, signal }) => {
      const page = await apiFetch<RequestPage | FailurePage>(`/api/orgs/${orgId}/${kind}`, {
        query: { ...filters, limit: PAGE_SIZE, cursor: pageParam },
        signal,
      });
      const rows = "requests" in page ? page.requests : page.failures;
      return { rows, next: page.next_cursor };
    },
    getNextPageParam: (last) => last.next ?? undefined,
  });

  function apply(next: Filters) {
    const out = new URLSearchParams();
    for (const k of FILTER_KEYS) {
      const v = next[k]?.trim();
      if (v) out.set(k, v);
    }
    setParams(out);
  }

  const rows = query.data?.pages.flatMap((p) => p.rows) ?? [];
  const nextPageError = query.isFetchNextPageError ? query.error : null;
  const filtered = Object.keys(filters).length > 0;
  return (
    <>
      <FilterForm filters={filters} withStatus={withStatus} onApply={apply} />
      {query.isPending ? (
        <Loading label={kind === "requests" ? "Loading requests…" : "Loading failures…"} />
      ) : query.isError && !query.isFetchNextPageError ? (
        <ErrorState error={query.error} onRetry={() => void query.refetch()} />
      ) : rows.length === 0 ? (
        <EmptyState title={kind === "requests" ? "No requests found" : "No failures found"}>
          <p className="muted">
            {filtered
              ? "Nothing matches these filters: widen the time range or clear a filter."
              : kind === "requests"
                ? "No request went through the proxy in the last 30 days."
                : "No request failed in the last 30 days."}
          </p>
        </EmptyState>
      ) : (
        <>
          <DataTable
            data={rows}
            columns={kind === "requests" ? REQUEST_COLUMNS : FAILURE_COLUMNS}
            caption={kind === "requests" ? "Requests, newest first" : "Failures, newest first"}
            getRowId={(r) => r.id}
            renderExpanded={(r) => <RequestDetails row={r} />}
          />
          <div className="table-footer">
            <span>
              {formatNumber(rows.length)} {rows.length === 1 ? "row" : "rows"}
            </span>
            {query.hasNextPage ? (
              <button
                type="button"
                className="button"
                disabled={query.isFetchingNextPage}
                onClick={() => void query.fetchNextPage()}
              >
                {query.isFetchingNextPage ? "Loading…" : "Load more"}
              </button>
            ) : (
              <span>end of the list</span>
            )}
          </div>
          {nextPageError && <ErrorState error={nextPageError} onRetry={() => void query.fetchNextPage()} />}
        </>
      )}
    </>
  );
}
