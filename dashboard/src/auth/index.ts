export { useMe, ME_QUERY_KEY } from "./useMe";
export { useOrg, roleAtLeast, type OrgContextValue } from "./useOrg";
export { useSession, SessionContext, type Session } from "./SessionContext";
export { RequireAuth } from "./RequireAuth";
