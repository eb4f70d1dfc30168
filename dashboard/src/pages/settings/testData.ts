// Answers of the settings routes, for the settings tests.
import type { Schemas } from "../../api/types";

export const KEYS: Schemas["Key"][] = [
  {
    id: "k1",
    display_prefix: "lc_key_AbC1",
    name: "production",
    created_at: "2026-11-01T09:00:00Z",
    revoked_at: null,
  },
  {
    id: "k2",
    display_prefix: "lc_key_Old9",
    name: null,
    created_at: "2026-10-01T09:00:00Z",
    revoked_at: "2026-11-02T09:00:00Z",
  },
];

export const MEMBERS: Schemas["Member"][] = [
  {
    id: "m1",
    email: "olga@example.com",
    role: "owner",
    oidc_subject: "auth0|1",
    created_at: "2026-09-01T09:00:00Z",
  },
  {
    id: "m2",
    email: "adam@example.com",
    role: "admin",
    oidc_subject: "auth0|2",
    created_at: "2026-09-02T09:00:00Z",
  },
  {
    id: "m3",
    email: "vera@example.com",
    role: "viewer",
    oidc_subject: null,
    created_at: "2026-09-03T09:00:00Z",
  },
];

export const INVITES: Schemas["Invite"][] = [
  {
    id: "i1",
    email: "new@example.com",
    role: "member",
    invited_by: "m2",
    created_at: "2026-12-01T09:00:00Z",
    expires_at: "2099-12-08T09:00:00Z",
    accepted_at: null,
  },
  {
    id: "i2",
    email: "late@example.com",
    role: "viewer",
    invited_by: null,
    created_at: "2026-11-01T09:00:00Z",
    expires_at: "2026-11-08T09:00:00Z",
    accepted_at: null,
  },
];

export const SETTINGS: Schemas["OrgSettings"] = {
  id: "o1",
  name: "Acme",
  p95_latency_threshold_ms: 2500,
  alert_recipients: ["oncall@example.com"],
  alert_webhooks: ["https://hooks.slack.com/services/T0/B0/xyz"],
  rate_limit_rpm: null,
  max_concurrent_streams: null,
  azure_configured: true,
};

export const AZURE: Schemas["AzureConfig"] = {
  endpoint: "https://acme.openai.azure.com",
  api_version: "2024-10-21",
  deployments: { "gpt-4o": "acme-gpt4o" },
  updated_at: "2026-11-20T09:00:00Z",
};

export const ORG: Schemas["Org"] = {
  id: "o1",
  name: "Acme",
  status: "active",
  p95_latency_threshold_ms: 2500,
  rate_limit_rpm: 600,
  max_concurrent_streams: null,
  alert_recipients: [],
  alert_webhooks: [],
  created_at: "2026-09-01T09:00:00Z",
  updated_at: "2026-09-01T09:00:00Z",
};

/** Every GET the Settings page makes, answered. */
export function settingsRoutes(options: { admin?: boolean; operator?: boolean } = {}) {
  const routes: Record<string, unknown> = {
    "GET /api/orgs/o1/keys": { keys: KEYS },
    "GET /api/orgs/o1/members": { members: MEMBERS },
    "GET /api/orgs/o1/settings": SETTINGS,
    "GET /api/orgs/o1/providers/azure": AZURE,
  };
  if (options.admin) routes["GET /api/orgs/o1/invites"] = { invites: INVITES };
  if (options.operator) routes["GET /api/orgs"] = { orgs: [ORG] };
  return routes;
}
