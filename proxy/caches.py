"""What the proxy knows about organisations, in memory, loaded before it serves.

Each cache (``orgs``, ``keys``, ``rules``, ``provider_configs``) is one immutable
mapping built from one query and swapped in whole, so a request always sees a complete
snapshot. A reload that fails keeps the last good snapshot and is logged; requests never
wait for a reload.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from schema.control import CACHES

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KeyEntry:
    key_id: uuid.UUID
    org_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class OrgEntry:
    status: str
    rate_limit_rpm: int | None
    max_concurrent_streams: int | None


@dataclass(frozen=True, slots=True)
class Rule:
    id: uuid.UUID
    priority: int
    match_feature: str | None
    match_task: str | None
    match_provider: str | None
    match_model: str | None
    target_provider: str | None
    target_model: str | None


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    endpoint: str | None
    api_version: str | None
    deployments: Mapping[str, str]


def _uuid(value: uuid.UUID) -> uuid.UUID:
    """A plain :class:`uuid.UUID` for asyncpg's own UUID type, which orjson cannot encode
    natively (each event would fall back to a slow per-field conversion)."""
    return uuid.UUID(bytes=value.bytes)


def _keys(rows: list[asyncpg.Record]) -> dict[str, KeyEntry]:
    return {r["key_hash"]: KeyEntry(_uuid(r["id"]), _uuid(r["org_id"])) for r in rows}


def _orgs(rows: list[asyncpg.Record]) -> dict[uuid.UUID, OrgEntry]:
    return {
        _uuid(r["id"]): OrgEntry(r["status"], r["rate_limit_rpm"], r["max_concurrent_streams"])
        for r in rows
    }


def _rules(rows: list[asyncpg.Record]) -> dict[uuid.UUID, tuple[Rule, ...]]:
    grouped: dict[uuid.UUID, list[Rule]] = {}
    for r in rows:  # ordered by org, priority
        rule = Rule(
            _uuid(r["id"]),
            r["priority"],
            r["match_feature"],
            r["match_task"],
            r["match_provider"],
            r["match_model"],
            r["target_provider"],
            r["target_model"],
        )
        grouped.setdefault(_uuid(r["org_id"]), []).append(rule)
    return {org_id: tuple(rules) for org_id, rules in grouped.items()}


def _provider_configs(rows: list[asyncpg.Record]) -> dict[tuple[uuid.UUID, str], ProviderConfig]:
    configs = {}
    for r in rows:
        deployments = r["deployments"]
        if isinstance(deployments, str | bytes):
            deployments = orjson.loads(deployments)
        configs[(_uuid(r["org_id"]), r["provider"])] = ProviderConfig(
            r["endpoint"], r["api_version"], dict(deployments or {})
        )
    return configs


# Cache name -> (query, builder). Rules hold only enabled ones, in priority order.
_LOADERS: dict[str, tuple[str, Callable[[list[asyncpg.Record]], Mapping[Any, Any]]]] = {
    "keys": ("SELECT key_hash, id, org_id FROM api_keys WHERE revoked_at IS NULL", _keys),
    "orgs": (
        "SELECT id, status, rate_limit_rpm, max_concurrent_streams FROM organizations",
        _orgs,
    ),
    "rules": (
        "SELECT id, org_id, priority, match_feature, match_task, match_provider, match_model,"
        " target_provider, target_model FROM routing_rules WHERE enabled"
        " ORDER BY org_id, priority, created_at, id",
        _rules,
    ),
    "provider_configs": (
        "SELECT org_id, provider, endpoint, api_version, deployments FROM provider_configs",
        _provider_configs,
    ),
}
assert set(_LOADERS) == set(CACHES)

Acquire = Callable[[], Any]  # an async context manager giving an asyncpg connection
OnReload = Callable[[str, bool], None]


class Caches:
    """The current snapshot of every cache, and how to reload each one."""

    def __init__(
        self,
        acquire: Acquire,
        *,
        clock: Callable[[], float] = time.time,
        on_reload: OnReload | None = None,
    ) -> None:
        self._acquire = acquire
        self._clock = clock
        self._on_reload = on_reload or (lambda name, ok: None)
        self.keys: Mapping[str, KeyEntry] = {}
        self.orgs: Mapping[uuid.UUID, OrgEntry] = {}
        self.rules: Mapping[uuid.UUID, tuple[Rule, ...]] = {}
        self.provider_configs: Mapping[tuple[uuid.UUID, str], ProviderConfig] = {}
        self.loaded_at: dict[str, float] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()

    @property
    def ready(self) -> bool:
        return len(self.loaded_at) == len(CACHES)

    async def load_all(self) -> None:
        """Load every cache; raises if any fails (used at start, before serving)."""
        for name in CACHES:
            await self._load(name)

    async def reload(self, name: str) -> bool:
        """Reload one cache now. On failure keep the last snapshot, log, return False."""
        try:
            await self._load(name)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("reloading the %s cache failed, keeping the last snapshot: %s", name, exc)
            self._on_reload(name, False)
            return False
        return True

    def request_reload(self, name: str) -> None:
        """Reload ``name`` in the background; requests that arrive meanwhile coalesce."""
        if name in self._running:
            self._again.add(name)
            return
        task = asyncio.get_running_loop().create_task(self._reload_loop(name))
        self._running[name] = task

    async def _reload_loop(self, name: str) -> None:
        try:
            while True:
                await self.reload(name)
                if name not in self._again:
                    return
                self._again.discard(name)
        finally:
            self._running.pop(name, None)

    async def reload_all(self) -> None:
        for name in CACHES:
            await self.reload(name)

    async def close(self) -> None:
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def _load(self, name: str) -> None:
        query, build = _LOADERS[name]
        async with self._acquire() as conn:
            rows = await conn.fetch(query)
        setattr(self, name, build(rows))
        self.loaded_at[name] = self._clock()
        self._on_reload(name, True)
        log.debug("loaded the %s cache: %d entries", name, len(rows))

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in CACHES}


async def run_periodic_reload(
    caches: Caches, period_s: float, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> None:
    """Reload every cache each ``period_s`` (catches control messages missed in an outage)."""
    while True:
        await sleep(period_s)
        await caches.reload_all()
