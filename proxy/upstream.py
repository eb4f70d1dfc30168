"""The upstream request: URL and headers for the chosen provider.

The caller's provider key arrives as ``Authorization: Bearer <key>`` (or, from the
``anthropic`` SDK, as ``x-api-key``) and leaves in the provider's own style. Every
``X-Lectr-*`` header and every hop-by-hop header is dropped. ``Accept-Encoding`` becomes
``identity`` so the proxy can read token usage from the response without decompressing.

A key for one named provider can also come as ``X-Lectr-Provider-Key-<provider>``
(stripped like every ``X-Lectr-*`` header): it is used when the request goes to that
provider, and a rule can move a request to another provider only with it. A Lectr key
is never forwarded as a provider key. Lectr stores no provider key.

URLs are built from the client's path and query as sent (see :mod:`proxy.paths`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from yarl import URL

from lectr.keys import KEY_PREFIX
from proxy import paths
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
# Where a caller's provider key can arrive, for the provider the request names.
KEY_HEADERS = ("Authorization", "x-api-key", "api-key")
# Prefix of the headers carrying the caller's key for one named provider.
TARGET_KEY_HEADER = "X-Lectr-Provider-Key-"


class AzureConfigMissing(Exception):
    """The organisation has no usable Azure OpenAI endpoint and api-version."""


def target_key_header(provider: str) -> str:
    return TARGET_KEY_HEADER + provider


def misplaced_lectr_key(headers: Mapping[str, str]) -> str | None:
    """The name of the provider-key header holding a Lectr key, if any: such a value is
    never forwarded."""
    for name in KEY_HEADERS:
        value = headers.get(name)
        if value and KEY_PREFIX in value:
            return name
    return None


def provider_key(headers: Mapping[str, str], provider: str | None = None) -> str | None:
    """The caller's key for ``provider``: ``X-Lectr-Provider-Key-<provider>`` when sent,
    else whichever of the usual headers it came in."""
    if provider is not None:
        target = headers.get(target_key_header(provider))
        if target:
            return target.strip()
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
) -> URL:
    """``<base>/<rest>?<query>``; Azure: ``<endpoint>/openai/deployments/<d>/<rest>``.

    ``rest`` and ``query`` are the client's, still encoded, ``rest`` already checked by
    :func:`proxy.paths.client_rest`. Raises :class:`proxy.paths.BadPath` for an Azure
    deployment name that is not a safe path segment."""
    if provider == "azure":
        return _azure_url(rest, query, model, base_urls.get("azure"), config)
    return paths.join(base_urls.get(provider) or PROVIDERS[provider].base_url, rest, query)


def _azure_url(
    rest: str, query: str, model: str | None, override: str | None, config: ProviderConfig | None
) -> URL:
    """The organisation's ``api-version`` replaces any the client sent (it is set once)."""
    endpoint = override or (config.endpoint if config else None)
    if config is None or not endpoint or not config.api_version:
        raise AzureConfigMissing(
            "this organisation has no Azure OpenAI endpoint and api-version configured"
        )
    if model:
        deployment = paths.segment(config.deployments.get(model, model))
        rest = f"openai/deployments/{deployment}/{rest}"
    else:
        rest = f"openai/{rest}"
    return paths.join(endpoint, rest, paths.with_param(query, "api-version", config.api_version))
