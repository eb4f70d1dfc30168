import { useQuery } from "@tanstack/react-query";
import { useContext } from "react";
import { apiFetch } from "../api/client";
import type { KeyList } from "../api/types";
import { SessionContext } from "../auth/SessionContext";

/**
 * The proxy's URL as clients reach it: /api/config's `proxy_url` when the API gives one,
 * else the dashboard's host on the proxy's default port.
 */
export function proxyUrl(configured?: string | null): string {
  if (configured) return configured.replace(/\/+$/, "");
  const host = window.location.hostname || "127.0.0.1";
  const bracketed = host.includes(":") ? `[${host}]` : host;
  return `http://${bracketed}:8080`;
}

/**
 * The client code to send traffic through Lectr (OpenAI and Anthropic SDKs), with the
 * proxy URL and the org's first active key's prefix filled in. The full key is shown only
 * once, when it is created, so the snippet shows its prefix.
 */
export function ClientSnippet({ orgId }: { orgId: string }) {
  const keys = useQuery({
    queryKey: ["org", orgId, "keys"],
    queryFn: ({ signal }) => apiFetch<KeyList>(`/api/orgs/${orgId}/keys`, { signal }),
  });
  const session = useContext(SessionContext);
  const active = keys.data?.keys.find((k) => !k.revoked_at);
  const url = proxyUrl(session?.config?.proxy_url);
  const key = active ? `${active.display_prefix}…` : "lc_key_…";
  const openai = `from openai import OpenAI

client = OpenAI(
    base_url="${url}/v1",
    api_key=OPENAI_API_KEY,  # your provider key
    default_headers={
        "X-Lectr-Key": "${key}",
        "X-Lectr-Feature": "support-bot",
    },
)`;
  const anthropic = `from anthropic import Anthropic

client = Anthropic(
    base_url="${url}",
    api_key=ANTHROPIC_API_KEY,
    default_headers={"X-Lectr-Key": "${key}"},
)`;
  return (
    <div className="client-snippet">
      <p>
        Point your SDK at your proxy URL <code>{url}</code> and send your Lectr key in the{" "}
        <code>X-Lectr-Key</code> header; your provider key stays where it was.
        {active ? (
          <>
            {" "}
            Your key starts with <code>{active.display_prefix}</code>
            {active.name ? ` (${active.name})` : ""}: use the full key you were shown when it
            was created.
          </>
        ) : keys.isPending ? null : (
          <> This organisation has no active key: an admin creates one under Settings.</>
        )}
      </p>
      <div className="snippet-grid">
        <figure>
          <figcaption>OpenAI SDK</figcaption>
          <pre>
            <code>{openai}</code>
          </pre>
        </figure>
        <figure>
          <figcaption>Anthropic SDK</figcaption>
          <pre>
            <code>{anthropic}</code>
          </pre>
        </figure>
      </div>
    </div>
  );
}
