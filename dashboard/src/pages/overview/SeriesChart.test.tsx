import { screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { yAxisWidth } from "../../components/chartAxis";
import { formatUsd } from "../../format";
import { mockApi } from "../../test/mockApi";
import { renderWithProviders } from "../../test/render";
import { SeriesChart, splitPartial } from "./SeriesChart";

const H = 3600_000;
const t0 = Date.parse("2026-12-02T10:00:00Z");
const points = [0, 1, 2, 3].map((i) => ({ t: t0 + i * H, value: 10 }));

describe("splitPartial", () => {
  it("leaves out the last hour while it is still filling", () => {
    const computedAt = new Date(t0 + 3 * H + 12 * 60_000).toISOString(); // 13:12
    const { complete, partial } = splitPartial(points, "hour", computedAt);
    expect(complete).toHaveLength(3);
    expect(partial?.t).toBe(t0 + 3 * H);
  });

  it("keeps a last hour that is complete", () => {
    const computedAt = new Date(t0 + 4 * H).toISOString(); // 14:00 exactly
    expect(splitPartial(points, "hour", computedAt)).toEqual({ complete: points, partial: null });
  });

  it("works by days for daily series", () => {
    const days = [0, 1].map((i) => ({ t: t0 + i * 24 * H, value: 1 }));
    const computedAt = new Date(t0 + 30 * H).toISOString();
    expect(splitPartial(days, "day", computedAt).partial?.t).toBe(t0 + 24 * H);
  });

  it("keeps everything without a computed_at", () => {
    expect(splitPartial(points, "hour", null).partial).toBeNull();
  });
});

describe("yAxisWidth", () => {
  it("fits the longest tick label, including a nice top tick above the maximum", () => {
    // $11.30 → ticks up to "$12.00" (6 characters).
    expect(yAxisWidth(11.3, formatUsd)).toBeGreaterThanOrEqual(6 * 7);
    expect(yAxisWidth(11.3, formatUsd)).toBeGreaterThan(yAxisWidth(2.8, formatUsd) - 1);
    expect(yAxisWidth(1234.5, formatUsd)).toBeGreaterThan(yAxisWidth(12, formatUsd));
    expect(yAxisWidth(0, formatUsd)).toBeGreaterThanOrEqual(36);
  });
});

describe("SeriesChart", () => {
  it("says what the current hour holds so far instead of drawing it as a drop", () => {
    mockApi({});
    const series = [0, 1, 2, 3].map((i) => ({
      start: new Date(t0 + i * H).toISOString(),
      requests: i === 3 ? 2 : 100,
      cost_usd: i === 3 ? 0.05 : 2,
    }));
    renderWithProviders(
      <SeriesChart
        title="Cost"
        orgId="o1"
        points={series as never}
        metric="cost_usd"
        step="hour"
        anomalies={[]}
        color="#000"
        format={formatUsd}
        tick={formatUsd}
        multiDay={false}
        computedAt={new Date(t0 + 3 * H + 5 * 60_000).toISOString()}
      />,
    );
    expect(screen.getByText(/The current hour is drawn once it is complete \(so far: \$0\.05\)/)).toBeInTheDocument();
  });
});
