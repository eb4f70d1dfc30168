import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { lazy, Suspense } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { CHUNK_RELOAD_KEY, isChunkLoadError, pageReload, RouteErrorBoundary } from "./RouteErrorBoundary";

const CHUNK_ERROR =
  "Failed to fetch dynamically imported module: http://localhost/assets/RecommendationsPage-abc123.js";

function Throws({ error }: { error: Error }): never {
  throw error;
}

function renderBoundary(error: Error) {
  return render(
    <div>
      <header>Lectr header</header>
      <RouteErrorBoundary resetKey="/orgs/o1/recommendations">
        <Throws error={error} />
      </RouteErrorBoundary>
    </div>,
  );
}

describe("RouteErrorBoundary", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("knows a chunk-load failure when it sees one", () => {
    expect(isChunkLoadError(new TypeError(CHUNK_ERROR))).toBe(true);
    expect(isChunkLoadError(new TypeError("Importing a module script failed."))).toBe(true);
    expect(isChunkLoadError(new Error("error loading dynamically imported module"))).toBe(true);
    expect(isChunkLoadError(new Error("Cannot read properties of undefined"))).toBe(false);
    expect(isChunkLoadError("nope")).toBe(false);
  });

  it("reloads the page once when a lazy page's chunk is gone (stale tab after a deploy)", async () => {
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    const reload = vi.spyOn(pageReload, "reload").mockImplementation(() => undefined);
    const Page = lazy(() => Promise.reject(new TypeError(CHUNK_ERROR)));
    render(
      <RouteErrorBoundary>
        <Suspense fallback={<p>loading page</p>}>
          <Page />
        </Suspense>
      </RouteErrorBoundary>,
    );
    expect(await screen.findByRole("status")).toHaveTextContent("new version");
    expect(reload).toHaveBeenCalledTimes(1);
    expect(window.sessionStorage.getItem(CHUNK_RELOAD_KEY)).not.toBeNull();
  });

  it("does not reload again right after the reload: shows an error with a Reload button", async () => {
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    const reload = vi.spyOn(pageReload, "reload").mockImplementation(() => undefined);
    window.sessionStorage.setItem(CHUNK_RELOAD_KEY, String(Date.now() - 1000));
    renderBoundary(new TypeError(CHUNK_ERROR));
    expect(reload).not.toHaveBeenCalled();
    expect(screen.getByRole("alert")).toHaveTextContent("Lectr was updated");
    expect(screen.getByText("Lectr header")).toBeInTheDocument();
    await userEvent.click(screen.getByRole("button", { name: "Reload" }));
    expect(reload).toHaveBeenCalledTimes(1);
  });

  it("reloads again when the last automatic reload is long past", () => {
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    const reload = vi.spyOn(pageReload, "reload").mockImplementation(() => undefined);
    window.sessionStorage.setItem(CHUNK_RELOAD_KEY, String(Date.now() - 10 * 60_000));
    renderBoundary(new TypeError(CHUNK_ERROR));
    expect(reload).toHaveBeenCalledTimes(1);
  });

  it("shows any other render error with a Reload button and keeps the shell", async () => {
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    const reload = vi.spyOn(pageReload, "reload").mockImplementation(() => undefined);
    renderBoundary(new Error("boom in a page"));
    expect(screen.getByRole("alert")).toHaveTextContent("boom in a page");
    expect(screen.getByText("Lectr header")).toBeInTheDocument();
    expect(reload).not.toHaveBeenCalled();
    await userEvent.click(screen.getByRole("button", { name: "Reload" }));
    expect(reload).toHaveBeenCalledTimes(1);
  });

  it("forgets the error when the user navigates elsewhere", () => {
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    const { rerender } = render(
      <RouteErrorBoundary resetKey="/a">
        <Throws error={new Error("page a broke")} />
      </RouteErrorBoundary>,
    );
    expect(screen.getByRole("alert")).toHaveTextContent("page a broke");
    rerender(
      <RouteErrorBoundary resetKey="/b">
        <p>page b</p>
      </RouteErrorBoundary>,
    );
    expect(screen.getByText("page b")).toBeInTheDocument();
    expect(screen.queryByRole("alert")).toBeNull();
  });
});
