// The app's route patterns (App.tsx registers them; src/test/render.tsx reuses them so
// useParams works in page tests).
export const PUBLIC_PATHS = ["/signin", "/auth/callback", "/invites/accept"] as const;

export const ORG_PATHS = [
  "/orgs/:orgId",
  "/orgs/:orgId/requests",
  "/orgs/:orgId/failures",
  "/orgs/:orgId/anomalies",
  "/orgs/:orgId/anomalies/:anomalyId",
  "/orgs/:orgId/recommendations",
  "/orgs/:orgId/rules",
  "/orgs/:orgId/settings",
] as const;

export const ROUTE_PATTERNS = ["/", ...PUBLIC_PATHS, ...ORG_PATHS] as const;
