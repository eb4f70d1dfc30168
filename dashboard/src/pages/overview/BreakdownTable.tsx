import { createColumnHelper } from "@tanstack/react-table";
import type { BreakdownEntry } from "../../api/types";
import { DataTable } from "../../components";
import { formatMs, formatNumber, formatPercent, formatUsd } from "../../format";

const column = createColumnHelper<BreakdownEntry>();

/** The key of an entry; the folded last entry reads "N others". */
export function entryName(entry: BreakdownEntry): string {
  if (entry.key !== null) return entry.key;
  const n = entry.folded_keys ?? 0;
  return `${formatNumber(n)} ${n === 1 ? "other" : "others"}`;
}

function successRate(e: BreakdownEntry): number | null {
  return e.requests > 0 ? 1 - e.errors / e.requests : null;
}

/** Top models, features or task types: requests, errors, p95 latency, cost. */
export function BreakdownTable({
  title,
  keyLabel,
  entries,
  limit = 10,
}: {
  title: string;
  keyLabel: string;
  entries: BreakdownEntry[];
  limit?: number;
}) {
  // Keep the folded entry (if any) last and visible; show the top `limit` others.
  const named = entries.filter((e) => e.key !== null);
  const folded = entries.filter((e) => e.key === null);
  const rest = named.slice(limit);
  const shown = named.slice(0, limit);
  if (rest.length > 0 || folded.length > 0) {
    const merged: BreakdownEntry = {
      key: null,
      requests: 0,
      errors: 0,
      cost_usd: 0,
      p95_ms: null,
      folded_keys: 0,
    };
    for (const e of [...rest, ...folded]) {
      merged.requests += e.requests;
      merged.errors += e.errors;
      merged.cost_usd += e.cost_usd;
      merged.folded_keys! += e.key === null ? (e.folded_keys ?? 0) : 1;
    }
    // A p95 of a merged group is not the max of p95s; show it only for a single folded entry.
    merged.p95_ms = rest.length === 0 && folded.length === 1 ? (folded[0]!.p95_ms ?? null) : null;
    shown.push(merged);
  }
  const columns = [
    column.accessor((e) => entryName(e), {
      id: "key",
      header: keyLabel,
      cell: (info) =>
        info.row.original.key === null ? <span className="muted">{info.getValue()}</span> : info.getValue(),
    }),
    column.accessor("requests", { header: "Requests", cell: (i) => formatNumber(i.getValue()), meta: { className: "num" } }),
    column.accessor((e) => successRate(e), {
      id: "success",
      header: "Success",
      cell: (i) => formatPercent(i.getValue(), 1),
      meta: { className: "num" },
    }),
    column.accessor("p95_ms", { header: "p95 latency", cell: (i) => formatMs(i.getValue()), meta: { className: "num" } }),
    column.accessor("cost_usd", { header: "Cost", cell: (i) => formatUsd(i.getValue()), meta: { className: "num" } }),
  ];
  return (
    <section className="card" aria-label={title}>
      <div className="card-header">
        <h2>{title}</h2>
      </div>
      <DataTable
        data={shown}
        columns={columns}
        caption={title}
        getRowId={(e, i) => e.key ?? `__others_${i}`}
        emptyText="No requests in this period."
      />
    </section>
  );
}

/** Providers: requests, p95 latency (the summary has p95, not mean), success rate, cost. */
export function ProviderTable({ entries }: { entries: BreakdownEntry[] }) {
  const columns = [
    column.accessor((e) => entryName(e), { id: "provider", header: "Provider" }),
    column.accessor("requests", { header: "Requests", cell: (i) => formatNumber(i.getValue()), meta: { className: "num" } }),
    column.accessor("p95_ms", { header: "p95 latency", cell: (i) => formatMs(i.getValue()), meta: { className: "num" } }),
    column.accessor((e) => successRate(e), {
      id: "success",
      header: "Success rate",
      cell: (i) => formatPercent(i.getValue(), 2),
      meta: { className: "num" },
    }),
    column.accessor("errors", { header: "Errors", cell: (i) => formatNumber(i.getValue()), meta: { className: "num" } }),
    column.accessor("cost_usd", { header: "Cost", cell: (i) => formatUsd(i.getValue()), meta: { className: "num" } }),
  ];
  return (
    <section className="card" aria-label="Providers">
      <div className="card-header">
        <h2>Providers</h2>
        <span className="muted">latency is the 95th percentile</span>
      </div>
      <DataTable
        data={entries}
        columns={columns}
        caption="Providers"
        getRowId={(e, i) => e.key ?? `__others_${i}`}
        emptyText="No requests in this period."
      />
    </section>
  );
}
