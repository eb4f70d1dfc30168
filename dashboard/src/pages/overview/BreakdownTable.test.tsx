import { screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import type { BreakdownEntry } from "../../api/types";
import { mockApi } from "../../test/mockApi";
import { renderWithProviders } from "../../test/render";
import { BreakdownTable, entryName } from "./BreakdownTable";

const entry = (key: string | null, requests: number, extra: Partial<BreakdownEntry> = {}): BreakdownEntry => ({
  key,
  requests,
  errors: 0,
  cost_usd: 1,
  p95_ms: 100,
  ...extra,
});

describe("BreakdownTable", () => {
  it("names the folded entry", () => {
    expect(entryName(entry(null, 5, { folded_keys: 1 }))).toBe("1 other");
    expect(entryName(entry(null, 5, { folded_keys: 1204 }))).toBe("1,204 others");
    expect(entryName(entry("gpt-4o", 5))).toBe("gpt-4o");
  });

  it("shows the top entries and folds the rest into one row", () => {
    mockApi({});
    const entries = [
      ...Array.from({ length: 12 }, (_, i) => entry(`model-${i}`, 100 - i)),
      entry(null, 30, { folded_keys: 7, errors: 3 }),
    ];
    renderWithProviders(<BreakdownTable title="Top models" keyLabel="Model" entries={entries} />);
    const table = screen.getByRole("table");
    const rows = within(table).getAllByRole("row");
    expect(rows).toHaveLength(1 + 10 + 1);
    const last = rows[rows.length - 1]!;
    expect(last).toHaveTextContent("9 others");
    expect(last).toHaveTextContent("209");
    expect(last).toHaveTextContent("$3.00");
  });
});
