// Numbers and times for display: Intl-based, in the browser's locale and time zone.

const DASH = "—";

function ok(value: number | null | undefined): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

// "narrowSymbol": "$8.75" in every locale (the default "symbol" gives "US$8.75" in some,
// e.g. en-GB or en-AU, where "$" alone could be another dollar).
const usd = new Intl.NumberFormat(undefined, {
  style: "currency",
  currency: "USD",
  currencyDisplay: "narrowSymbol",
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
});

const usdSmall = new Intl.NumberFormat(undefined, {
  style: "currency",
  currency: "USD",
  currencyDisplay: "narrowSymbol",
  maximumSignificantDigits: 2,
});

/** "$1,234.56"; "$0.0042" for amounts under a cent; "—" for null. */
export function formatUsd(value: number | null | undefined): string {
  if (!ok(value)) return DASH;
  if (value !== 0 && Math.abs(value) < 0.01) {
    return usdSmall.format(value);
  }
  return usd.format(value);
}

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

/** "12,345" (integers); up to two decimals otherwise. */
export function formatNumber(value: number | null | undefined): string {
  if (!ok(value)) return DASH;
  return Number.isInteger(value) ? integer.format(value) : decimal.format(value);
}

/** "12.3K", "4.5M": for tight spaces such as chart axes. */
export function formatCompact(value: number | null | undefined): string {
  if (!ok(value)) return DASH;
  return new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 }).format(
    value,
  );
}

/** "812 ms", "1.24 s". */
export function formatMs(value: number | null | undefined): string {
  if (!ok(value)) return DASH;
  if (Math.abs(value) < 1000) return `${integer.format(Math.round(value))} ms`;
  return `${new Intl.NumberFormat(undefined, {
    minimumFractionDigits: 2,
    maximumFractionDigits: 2,
  }).format(value / 1000)} s`;
}

/** 0.0123 → "1.23 %". */
export function formatPercent(ratio: number | null | undefined, digits = 2): string {
  if (!ok(ratio)) return DASH;
  return `${new Intl.NumberFormat(undefined, {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  }).format(ratio * 100)} %`;
}

function parse(iso: string | null | undefined): Date | null {
  if (!iso) return null;
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? null : date;
}

const dateTime = new Intl.DateTimeFormat(undefined, {
  day: "numeric",
  month: "short",
  year: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});
const timeOnly = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayOnly = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
const dayHour = new Intl.DateTimeFormat(undefined, {
  day: "numeric",
  month: "short",
  hour: "2-digit",
  minute: "2-digit",
});

/** Local zone, e.g. "2 Dec 2026, 14:05". */
export function formatTime(iso: string | null | undefined): string {
  const date = parse(iso);
  return date ? dateTime.format(date) : DASH;
}

/** A chart tick: "14:00" for hourly points, "2 Dec" for daily ones. */
export function formatTick(iso: string, step: "hour" | "day" | "dayhour"): string {
  const date = parse(iso);
  if (!date) return "";
  if (step === "day") return dayOnly.format(date);
  if (step === "dayhour") return dayHour.format(date);
  return timeOnly.format(date);
}

/** "just now", "5 min ago", "3 h ago", "2 d ago" (or "in 5 min" for the future). */
export function formatRelative(iso: string | null | undefined, now: number = Date.now()): string {
  const date = parse(iso);
  if (!date) return DASH;
  const seconds = Math.round((now - date.getTime()) / 1000);
  const future = seconds < 0;
  const abs = Math.abs(seconds);
  let text: string;
  if (abs < 45) return "just now";
  if (abs < 3600) text = `${Math.max(1, Math.round(abs / 60))} min`;
  else if (abs < 86400) text = `${Math.round(abs / 3600)} h`;
  else text = `${Math.round(abs / 86400)} d`;
  return future ? `in ${text}` : `${text} ago`;
}
