export { Loading, ErrorState, EmptyState, PageHeader, Notice, Badge } from "./states";
export { ConfirmButton } from "./ConfirmButton";
export { ClientSnippet, proxyUrl } from "./ClientSnippet";
export { DataTable } from "./DataTable";
export { StatCard } from "./StatCard";
export { AppShell } from "./AppShell";
export { RouteErrorBoundary, isChunkLoadError } from "./RouteErrorBoundary";
