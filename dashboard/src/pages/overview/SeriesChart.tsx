import { useNavigate } from "react-router-dom";
import {
  Area,
  AreaChart,
  CartesianGrid,
  ReferenceArea,
  ReferenceDot,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from "recharts";
import type { Anomaly, SeriesPoint } from "../../api/types";
import { yAxisWidth } from "../../components/chartAxis";
import { formatTick, formatTime } from "../../format";
import { kindLabel, scopeText } from "../anomalies/anomaly";

const HOUR = 3600_000;
const DAY = 24 * HOUR;

/**
 * The series without its last point when that bucket is still filling (its start + step is
 * after the moment the summary was computed): drawn, the current hour's few minutes of
 * traffic look like a drop to zero — an outage that is not there. `partial` is that point.
 */
export function splitPartial<P extends { t: number }>(
  data: P[],
  step: "hour" | "day",
  computedAt: string | null | undefined,
): { complete: P[]; partial: P | null } {
  const last = data[data.length - 1];
  const at = computedAt ? Date.parse(computedAt) : NaN;
  if (!last || !Number.isFinite(at)) return { complete: data, partial: null };
  const size = step === "day" ? DAY : HOUR;
  if (last.t + size <= at) return { complete: data, partial: null };
  return { complete: data.slice(0, -1), partial: last };
}

interface Props {
  title: string;
  orgId: string;
  points: SeriesPoint[];
  metric: "cost_usd" | "requests";
  step: "hour" | "day";
  anomalies: Anomaly[];
  color: string;
  format: (value: number) => string;
  tick: (value: number) => string;
  multiDay: boolean;
  /** When the summary was computed: a last bucket that ends after it is left out. */
  computedAt?: string | null;
}

/** A metric over the period, with the period's anomalies shaded and marked (each marker
 * opens the anomaly). */
export function SeriesChart({
  title,
  orgId,
  points,
  metric,
  step,
  anomalies,
  color,
  format,
  tick,
  multiDay,
  computedAt,
}: Props) {
  const navigate = useNavigate();
  const all = points
    .map((p) => ({ t: Date.parse(p.start), value: p[metric] }))
    .filter((p) => Number.isFinite(p.t));
  const split = splitPartial(all, step, computedAt);
  // Only a partial bucket (the first hour of a new org): draw it rather than nothing.
  const data = split.complete.length > 0 ? split.complete : all;
  const partial = split.complete.length > 0 ? split.partial : null;
  if (data.length === 0) return <p className="muted">No data points yet.</p>;
  const start = data[0]!.t;
  const end = data[data.length - 1]!.t + (step === "day" ? DAY : HOUR);
  const max = Math.max(0, ...data.map((p) => p.value));
  const valueAt = (t: number) => {
    let best = data[0]!;
    for (const p of data) if (p.t <= t) best = p;
    return best.value;
  };
  const tickStep = step === "day" ? "day" : multiDay ? "dayhour" : "hour";
  return (
    <figure style={{ margin: 0 }}>
      <figcaption className="sr-only">{title}</figcaption>
      <div className="chart">
        <ResponsiveContainer width="100%" height="100%">
          <AreaChart data={data} margin={{ top: 12, right: 12, bottom: 0, left: 4 }}>
            <defs>
              <linearGradient id={`fill-${metric}`} x1="0" y1="0" x2="0" y2="1">
                <stop offset="0%" stopColor={color} stopOpacity={0.28} />
                <stop offset="100%" stopColor={color} stopOpacity={0.02} />
              </linearGradient>
            </defs>
            <CartesianGrid stroke="#e1e5eb" vertical={false} />
            <XAxis
              dataKey="t"
              type="number"
              scale="time"
              domain={[start, end]}
              tickFormatter={(t: number) => formatTick(new Date(t).toISOString(), tickStep)}
              tick={{ fontSize: 11, fill: "#6b7585" }}
              minTickGap={28}
            />
            <YAxis
              tickFormatter={tick}
              tick={{ fontSize: 11, fill: "#6b7585" }}
              width={yAxisWidth(max, tick)}
              allowDecimals={metric !== "requests"}
            />
            <Tooltip
              labelFormatter={(t) => formatTime(new Date(Number(t)).toISOString())}
              formatter={(v) => [format(typeof v === "number" ? v : 0), title]}
            />
            {anomalies.map((a) => {
              const x1 = Math.max(start, Date.parse(a.window_start));
              const x2 = Math.min(end, Math.max(Date.parse(a.window_end), x1 + HOUR));
              return (
                <ReferenceArea
                  key={`area-${a.id}`}
                  x1={x1}
                  x2={x2}
                  fill="#b42318"
                  fillOpacity={0.12}
                  ifOverflow="hidden"
                />
              );
            })}
            <Area
              type="monotone"
              dataKey="value"
              stroke={color}
              strokeWidth={2}
              fill={`url(#fill-${metric})`}
              isAnimationActive={false}
              name={title}
            />
            {anomalies.map((a) => {
              const x = Math.max(start, Math.min(end, Date.parse(a.window_start)));
              const label = `${kindLabel(a.kind)} anomaly, ${scopeText(a)}, ${formatTime(a.window_start)}`;
              return (
                <ReferenceDot
                  key={`dot-${a.id}`}
                  x={x}
                  y={Math.max(valueAt(x), max * 0.02)}
                  ifOverflow="extendDomain"
                  shape={(props: { cx?: number; cy?: number }) => (
                    <g
                      role="link"
                      tabIndex={0}
                      aria-label={label}
                      style={{ cursor: "pointer" }}
                      onClick={() => navigate(`/orgs/${orgId}/anomalies/${a.id}`)}
                      onKeyDown={(e) => {
                        if (e.key === "Enter") navigate(`/orgs/${orgId}/anomalies/${a.id}`);
                      }}
                    >
                      <title>{label}</title>
                      <circle cx={props.cx} cy={props.cy} r={6} fill="#b42318" stroke="#fff" strokeWidth={2} />
                    </g>
                  )}
                />
              );
            })}
          </AreaChart>
        </ResponsiveContainer>
      </div>
      {partial && (
        <p className="chart-note">
          {step === "day" ? "Today" : "The current hour"} is drawn once it is complete (so far:{" "}
          {format(partial.value)}).
        </p>
      )}
    </figure>
  );
}
