"""Which provider base URLs this proxy overrides (``LECTR_<PROVIDER>_BASE_URL``), for the
start-up log: an operator sees at once where each provider's traffic goes. A URL may
hold credentials (``https://user:token@host``) or a key in its query: both are hidden.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import urlsplit

from proxy.providers import PROVIDERS

log = logging.getLogger("lectr.proxy")


def shown(url: str) -> str:
    """``url`` without its user info, query or fragment (replaced by ``***``)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return parts._replace(
        netloc=netloc,
        query="***" if parts.query else "",
        fragment="***" if parts.fragment else "",
    ).geturl()


def log_overrides(base_urls: Mapping[str, str]) -> None:
    """One line naming each overridden provider and its URL, or saying there is none."""
    if not base_urls:
        log.info("provider base URLs: the providers' own (none overridden)")
        return
    listed = ", ".join(f"{name}={shown(url)}" for name, url in sorted(base_urls.items()))
    others = len(PROVIDERS) - len(base_urls)
    log.info("provider base URLs overridden: %s (%d others as published)", listed, others)
