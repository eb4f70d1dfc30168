import { useQuery, type UseQueryResult } from "@tanstack/react-query";
import { apiFetch } from "../api/client";
import type { Schemas } from "../api/types";

export const ME_QUERY_KEY = ["me"] as const;

/** GET /api/me: the caller and its organisations (with the caller's role in each). */
export function useMe(): UseQueryResult<Schemas["Me"]> {
  return useQuery({
    queryKey: ME_QUERY_KEY,
    queryFn: ({ signal }) => apiFetch<Schemas["Me"]>("/api/me", { signal }),
    staleTime: 5 * 60 * 1000,
  });
}
