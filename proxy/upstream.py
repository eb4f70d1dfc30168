"""The upstream request: URL and headers for the chosen provider.

The caller's provider key arrives as ``Authorization: Bearer <key>`` (or, from the
``anthropic`` SDK, as ``x-api-key``) and leaves in the provider's own style. Every
``X-Lectr-*`` header and every hop-by-hop header is dropped. ``Accept-Encoding`` becomes
``identity`` so the proxy can read token usage from the response without decompressing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import quote

from proxy.caches import ProviderConfig
from proxy.providers import API_KEY, BEARER, PROVIDERS, X_API_KEY

# Request headers never forwarded (compared lower-case).
_DROPPED = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "accept-encoding",
        "authorization",
        "x-api-key",
        "api-key",
    }
)
_AUTH_HEADER = {BEARER: "Authorization", X_API_KEY: "x-api-key", API_KEY: "api-key"}


class AzureConfigMissing(Exception):
    """The organisation has no usable Azure OpenAI endpoint and api-version."""


def provider_key(headers: Mapping[str, str]) -> str | None:
    """The caller's provider key, whichever header it came in."""
    auth = headers.get("Authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else auth
    return headers.get("x-api-key") or headers.get("api-key")


def headers_for(
    provider: str, client_headers: Iterable[tuple[str, str]], key: str | None
) -> dict[str, str]:
    """The headers to send upstream."""
    row = PROVIDERS[provider]
    out: dict[str, str] = {}
    for name, value in client_headers:
        lower = name.lower()
        if lower in _DROPPED or lower.startswith("x-lectr-"):
            continue
        out[name] = value
    if key is not None:
        out[_AUTH_HEADER[row.auth]] = f"Bearer {key}" if row.auth == BEARER else key
    present = {name.lower() for name in out}
    for name, value in row.extra_headers:
        if name not in present:
            out[name] = value
    out["Accept-Encoding"] = "identity"
    return out


def url_for(
    provider: str,
    rest: str,
    query: str,
    *,
    model: str | None,
    base_urls: Mapping[str, str],
    config: ProviderConfig | None,
) -> str:
    """``<base>/<rest>?<query>``; Azure: ``<endpoint>/openai/deployments/<d>/<rest>``."""
    if provider == "azure":
        return _azure_url(rest, query, model, base_urls.get("azure"), config)
    base = base_urls.get(provider) or PROVIDERS[provider].base_url
    url = f"{base}/{rest}"
    return f"{url}?{query}" if query else url


def _azure_url(
    rest: str, query: str, model: str | None, override: str | None, config: ProviderConfig | None
) -> str:
    endpoint = override or (config.endpoint if config else None)
    if config is None or not endpoint or not config.api_version:
        raise AzureConfigMissing(
            "this organisation has no Azure OpenAI endpoint and api-version configured"
        )
    if model:
        deployment = quote(config.deployments.get(model, model), safe="")
        path = f"{endpoint.rstrip('/')}/openai/deployments/{deployment}/{rest}"
    else:
        path = f"{endpoint.rstrip('/')}/openai/{rest}"
    version = f"api-version={quote(config.api_version, safe='')}"
    return f"{path}?{query}&{version}" if query else f"{path}?{version}"
