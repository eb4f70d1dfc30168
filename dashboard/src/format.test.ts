import { afterEach, describe, expect, it, vi } from "vitest";
import { formatMs, formatNumber, formatPercent, formatRelative, formatUsd } from "./format";

describe("format", () => {
  it("formats money", () => {
    expect(formatUsd(1234.56)).toBe("$1,234.56");
    expect(formatUsd(0.0042)).toBe("$0.0042");
    expect(formatUsd(0)).toBe("$0.00");
    expect(formatUsd(null)).toBe("—");
  });
  it("formats numbers, durations and ratios", () => {
    expect(formatNumber(12345)).toBe("12,345");
    expect(formatMs(812.4)).toBe("812 ms");
    expect(formatMs(1240)).toBe("1.24 s");
    expect(formatPercent(0.0123)).toBe("1.23 %");
    expect(formatPercent(undefined)).toBe("—");
  });
  it("formats relative times", () => {
    const now = Date.parse("2026-12-02T14:05:00Z");
    expect(formatRelative("2026-12-02T14:00:00Z", now)).toBe("5 min ago");
    expect(formatRelative("2026-12-02T11:05:00Z", now)).toBe("3 h ago");
    expect(formatRelative("2026-12-02T14:04:50Z", now)).toBe("just now");
  });

  describe("in a locale whose default USD symbol is US$", () => {
    afterEach(() => {
      vi.unstubAllGlobals();
      vi.resetModules();
    });
    for (const locale of ["en-GB", "en-CA", "en-AU"]) {
      it(`shows plain $ in ${locale}`, async () => {
        const RealNumberFormat = Intl.NumberFormat;
        // The module's formatters use the browser's locale: make it `locale`.
        const NumberFormat = function (
          locales?: string | string[],
          options?: Intl.NumberFormatOptions,
        ) {
          return new RealNumberFormat(locales ?? locale, options);
        } as unknown as typeof Intl.NumberFormat;
        const fakeIntl = Object.create(Intl) as typeof Intl & { NumberFormat: typeof Intl.NumberFormat };
        Object.defineProperty(fakeIntl, "NumberFormat", { value: NumberFormat });
        vi.stubGlobal("Intl", fakeIntl);
        vi.resetModules();
        const fresh = await import("./format");
        expect(fresh.formatUsd(8.75)).toBe("$8.75");
        expect(fresh.formatUsd(12)).toBe("$12.00");
        expect(fresh.formatUsd(0.0042)).toBe("$0.0042");
        expect(fresh.formatUsd(8.75)).not.toContain("US");
      });
    }
  });
});
