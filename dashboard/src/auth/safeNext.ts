/** A `next` value we are willing to navigate to: a path on this site, not the sign-in pages. */
export function safeNext(next: string | null | undefined): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return "/";
  if (next.startsWith("/signin") || next.startsWith("/auth/callback")) return "/";
  return next;
}
