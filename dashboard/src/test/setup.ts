import "@testing-library/jest-dom/vitest";
import { cleanup, configure } from "@testing-library/react";
import { afterEach, expect, vi } from "vitest";
import { setCredentials } from "../auth/credentials";
import { takeUnmatchedCalls } from "./mockApi";

// The suite runs files in parallel and pages load lazily: give findBy/waitFor some room.
configure({ asyncUtilTimeout: 4000 });

// Recharts' ResponsiveContainer and some layout code need these; jsdom has neither.
class ResizeObserverStub {
  observe() {}
  unobserve() {}
  disconnect() {}
}
if (!("ResizeObserver" in globalThis)) {
  (globalThis as { ResizeObserver?: unknown }).ResizeObserver = ResizeObserverStub;
}
if (!window.matchMedia) {
  Object.defineProperty(window, "matchMedia", {
    writable: true,
    value: (query: string) => ({
      matches: false,
      media: query,
      onchange: null,
      addListener: () => undefined,
      removeListener: () => undefined,
      addEventListener: () => undefined,
      removeEventListener: () => undefined,
      dispatchEvent: () => false,
    }),
  });
}
// jsdom lays nothing out, so Recharts' ResponsiveContainer measures 0 × 0 and says so.
const warn = console.warn.bind(console);
console.warn = (...args: unknown[]) => {
  if (typeof args[0] === "string" && args[0].includes("of chart should be greater than 0")) return;
  warn(...args);
};
if (!window.scrollTo) window.scrollTo = () => undefined;

afterEach(() => {
  cleanup();
  setCredentials(null);
  window.sessionStorage.clear();
  const unmatched = takeUnmatchedCalls();
  vi.unstubAllGlobals();
  expect(unmatched, "API calls no mockApi route answered").toEqual([]);
});
