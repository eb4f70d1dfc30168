// The filters of /requests and /failures, as they live in the page's query string.

export { PROVIDERS, TASK_TYPES as TASKS } from "../../api/names";

export const STATUSES = ["2xx", "4xx", "5xx", "error"] as const;

export const FILTER_KEYS = ["since", "until", "feature", "model", "provider", "status", "task", "streaming"] as const;
export type FilterKey = (typeof FILTER_KEYS)[number];
export type Filters = Partial<Record<FilterKey, string>>;

/** The filters in `params` the API knows (`status` only for requests). */
export function readFilters(params: URLSearchParams, withStatus: boolean): Filters {
  const out: Filters = {};
  for (const key of FILTER_KEYS) {
    if (key === "status" && !withStatus) continue;
    const value = params.get(key);
    if (value) out[key] = value;
  }
  if (out.streaming && out.streaming !== "true" && out.streaming !== "false") delete out.streaming;
  if (out.status && !(STATUSES as readonly string[]).includes(out.status)) delete out.status;
  return out;
}

function pad(n: number, width = 2): string {
  return String(Math.abs(n)).padStart(width, "0");
}

/** A <input type="datetime-local"> value (local time) → ISO 8601 with the local offset. */
export function localInputToIso(value: string): string | null {
  if (!value) return null;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return null;
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
    `${sign}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`
  );
}

/** An ISO time → the <input type="datetime-local"> value in local time. */
export function isoToLocalInput(iso: string | undefined): string {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`
  );
}
