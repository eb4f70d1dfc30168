import { useParams } from "react-router-dom";
import type { Role } from "../api/types";
import { useMe } from "./useMe";

const RANK: Record<Role, number> = { viewer: 0, member: 1, admin: 2, owner: 3 };

export interface OrgContextValue {
  orgId: string;
  org: { id: string; name: string; role: Role };
  /** Signed in with the admin secret. */
  operator: boolean;
  /** The caller's role ranks at least `role`. */
  can(role: "member" | "admin" | "owner"): boolean;
}

export function roleAtLeast(actual: Role, wanted: Role): boolean {
  return RANK[actual] >= RANK[wanted];
}

/**
 * The organisation of the current route (`/orgs/:orgId/...`) and the caller's role in it.
 * Pages render inside OrgLayout, which waits for /api/me and shows "not found" for an org
 * the caller cannot open, so here both are known.
 */
export function useOrg(): OrgContextValue {
  const { orgId } = useParams();
  const me = useMe();
  if (!orgId) throw new Error("useOrg needs an /orgs/:orgId route");
  const found = me.data?.orgs.find((o) => o.id === orgId);
  if (!found) {
    throw new Error(
      me.data ? `organisation ${orgId} is not one of yours` : "useOrg used before /api/me loaded",
    );
  }
  const org = { id: found.id, name: found.name, role: found.role };
  return {
    orgId,
    org,
    operator: me.data?.operator ?? false,
    can: (role) => roleAtLeast(org.role, role),
  };
}
