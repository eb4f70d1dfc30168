// Catches what a page throws while it renders, and a lazy page whose chunk is gone: a tab
// opened before a deploy asks for /assets/SomePage-<old hash>.js, which the new build no
// longer has ("Failed to fetch dynamically imported module"). For a missing chunk the page
// reloads once (the new index.html names the new chunks); a sessionStorage flag keeps a
// chunk that stays missing from reloading forever. Anything else shows an error with a
// "Reload" button; the shell around the boundary (header, nav) stays.
import { Component, type ErrorInfo, type ReactNode } from "react";
import { ErrorState, Loading } from "./states";

export const CHUNK_RELOAD_KEY = "lectr.chunkReloadAt";
/** A chunk failing again within this long after the automatic reload is not retried. */
const RELOAD_GUARD_MS = 30_000;

/** The messages browsers and Vite give for a lazy module that could not be loaded. */
export function isChunkLoadError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.name === "ChunkLoadError") return true;
  return /Failed to fetch dynamically imported module|error loading dynamically imported module|Importing a module script failed|Unable to preload CSS|Loading (CSS )?chunk [\w-]+ failed/i.test(
    error.message,
  );
}

/** Indirection so tests can replace the reload. */
export const pageReload = {
  reload(): void {
    window.location.reload();
  },
};

function readFlag(): number | null {
  try {
    const raw = window.sessionStorage.getItem(CHUNK_RELOAD_KEY);
    const at = raw ? Number(raw) : NaN;
    return Number.isFinite(at) ? at : null;
  } catch {
    return null;
  }
}

/** Whether a missing chunk may reload the page: not if it already did so moments ago. */
export function mayReloadForStaleChunk(now: number = Date.now()): boolean {
  const last = readFlag();
  return !(last !== null && now - last >= 0 && now - last < RELOAD_GUARD_MS);
}

/**
 * Reloads the page for a missing chunk unless it already did so moments ago.
 * Returns whether a reload was started.
 */
export function reloadForStaleChunk(now: number = Date.now()): boolean {
  if (!mayReloadForStaleChunk(now)) return false;
  try {
    window.sessionStorage.setItem(CHUNK_RELOAD_KEY, String(now));
  } catch {
    // Without sessionStorage there is no loop guard: do not reload automatically.
    return false;
  }
  pageReload.reload();
  return true;
}

interface Props {
  children: ReactNode;
  /** When this changes (e.g. the pathname), a caught error is forgotten. */
  resetKey?: string;
}
interface State {
  error: unknown;
  reloading: boolean;
}

export class RouteErrorBoundary extends Component<Props, State> {
  state: State = { error: null, reloading: false };

  static getDerivedStateFromError(error: unknown): Partial<State> {
    return {
      error: error ?? new Error("Something went wrong."),
      reloading: isChunkLoadError(error) && mayReloadForStaleChunk(),
    };
  }

  componentDidCatch(error: unknown, info: ErrorInfo): void {
    if (this.state.reloading) {
      if (!reloadForStaleChunk()) this.setState({ reloading: false });
      return;
    }
    console.error("A page failed to render", error, info.componentStack);
  }

  componentDidUpdate(previous: Props): void {
    if (previous.resetKey !== this.props.resetKey && this.state.error && !this.state.reloading) {
      this.setState({ error: null, reloading: false });
    }
  }

  render() {
    const { error, reloading } = this.state;
    if (!error) return this.props.children;
    if (reloading) return <Loading label="Loading the new version of Lectr…" />;
    const stale = isChunkLoadError(error);
    return (
      <ErrorState
        error={
          stale
            ? new Error(
                "Lectr was updated and this page could not be loaded. Reload to get the new version.",
              )
            : error
        }
        retryLabel="Reload"
        onRetry={() => pageReload.reload()}
      />
    );
  }
}
