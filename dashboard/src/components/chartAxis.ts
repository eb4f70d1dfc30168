// Chart helpers shared by the Overview's series and the anomaly charts.

/** An axis width that fits the longest tick label (11 px digits ≈ 7 px each, with the tick line and a gap). */
export function yAxisWidth(max: number, tick: (value: number) => string): number {
  const top = Math.max(0, max);
  const values = [0, top];
  if (top > 0) {
    // Recharts picks "nice" ticks: the top one can be above the maximum (11.3 → 12).
    const rough = top / 4;
    const magnitude = 10 ** Math.floor(Math.log10(rough));
    const nice = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= rough) ?? rough;
    const niceTop = Math.ceil(top / nice) * nice;
    values.push(nice, niceTop, niceTop - nice, niceTop / 2);
  }
  const longest = Math.max(...values.map((v) => tick(v).length));
  return Math.max(36, Math.ceil(longest * 7) + 14);
}
