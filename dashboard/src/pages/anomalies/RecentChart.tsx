import {
  CartesianGrid,
  Line,
  LineChart,
  ReferenceArea,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from "recharts";
import type { AnomalyRecentPoint } from "../../api/types";
import { yAxisWidth } from "../../components/chartAxis";
import { formatTick, formatTime } from "../../format";
import { formatKindTick, formatKindValue, kindUnit } from "./anomaly";

const HOUR = 3600_000;

/** The 24 hours before the anomaly's window and the window's, the window shaded. */
export function RecentChart({
  kind,
  recent,
  windowStart,
  windowEnd,
  baseline,
  large,
}: {
  kind: string;
  recent: AnomalyRecentPoint[];
  windowStart: string;
  windowEnd: string;
  baseline: number | null;
  large?: boolean;
}) {
  const points = recent
    // Each hour's value drawn at its middle, so the window's sits inside the shaded band.
    .map((p) => ({ t: Date.parse(p.hour) + HOUR / 2, value: p.value }))
    .filter((p) => Number.isFinite(p.t));
  if (points.length === 0) return null;
  const ws = Date.parse(windowStart);
  const last = points[points.length - 1]!.t;
  const we = Math.max(Date.parse(windowEnd), last + HOUR / 2);
  const first = points[0]!.t - HOUR / 2;
  const max = Math.max(0, baseline ?? 0, ...points.map((p) => p.value ?? 0));
  return (
    <figure className="recent-chart" style={{ margin: 0 }}>
      <figcaption className="sr-only">{kindUnit(kind)} over the last 25 hours</figcaption>
      <div className={large ? "chart-large" : "chart-small"}>
        <ResponsiveContainer width="100%" height="100%" initialDimension={{ width: 320, height: large ? 260 : 120 }}>
          <LineChart data={points} margin={{ top: 6, right: 8, bottom: 0, left: large ? 8 : 0 }}>
            {large && <CartesianGrid stroke="#e1e5eb" vertical={false} />}
            <XAxis
              dataKey="t"
              type="number"
              scale="time"
              domain={[first, we]}
              tickFormatter={(t: number) => formatTick(new Date(t - HOUR / 2).toISOString(), "hour")}
              tick={{ fontSize: 11, fill: "#6b7585" }}
              minTickGap={24}
              hide={!large}
            />
            <YAxis
              tickFormatter={(v: number) => formatKindTick(kind, v)}
              tick={{ fontSize: 11, fill: "#6b7585" }}
              width={large ? yAxisWidth(max, (v) => formatKindTick(kind, v)) : 0}
              hide={!large}
            />
            <ReferenceArea x1={ws} x2={we} fill="#b42318" fillOpacity={0.1} ifOverflow="extendDomain" />
            {baseline !== null && large && (
              <Line
                dataKey={() => baseline}
                stroke="#6b7585"
                strokeDasharray="4 4"
                dot={false}
                isAnimationActive={false}
                name="baseline"
              />
            )}
            <Line
              dataKey="value"
              stroke="#2f5bd3"
              strokeWidth={2}
              dot={false}
              connectNulls
              isAnimationActive={false}
              name={kindUnit(kind)}
            />
            <Tooltip
              labelFormatter={(t) => `hour from ${formatTime(new Date(Number(t) - HOUR / 2).toISOString())}`}
              formatter={(v) => formatKindValue(kind, typeof v === "number" ? v : null)}
            />
          </LineChart>
        </ResponsiveContainer>
      </div>
      <p className="chart-note">
        {kindUnit(kind)}: the 24 hours before the anomaly and its window (shaded)
        {large && baseline !== null ? "; dashed: the baseline" : ""}
      </p>
    </figure>
  );
}
