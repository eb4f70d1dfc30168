"""Changes made through the API reach a running proxy within 1 s: a rule changes its
routing, a revoked key and a disabled org are refused, a rate limit applies. The API
publishes on the control exchange the proxy listens to; nothing is restarted."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable

import pytest

from lectr.orgs import IssuedKey
from lectr.settings import Settings
from tests.api.conftest import ApiClient, StartApi
from tests.proxy import conftest as proxy_fixtures
from tests.support.providers import FakeProviders

# The proxy's fixtures.
start_proxy = proxy_fixtures.start_proxy
org = proxy_fixtures.org

DEADLINE_S = 1.0


@dataclasses.dataclass
class Running:
    api: ApiClient
    proxy: proxy_fixtures.RunningProxy
    org: IssuedKey

    async def status(self) -> int:
        return (await self.answer())[0]

    async def answer(self) -> tuple[int, str | None]:
        """One chat completion through the proxy: its status and error code, if any."""
        response = await proxy_fixtures.chat(self.proxy, self.org, "gpt-4o")
        if response.status == 200:
            return 200, None
        return response.status, (await response.json())["error"]["code"]

    def answers(self, status: int, code: str | None) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return await self.answer() == (status, code)

        return check

    async def change(self, method: str, path: str, body: object) -> float:
        """Make the change through the API; the time it was made."""
        started = time.monotonic()
        reply = await self.api.call(method, path, json=body)
        assert reply.status in (200, 201), reply.body
        assert reply.body.get("proxies") is None, "the proxies were not told"
        return started


@pytest.fixture
async def running(
    start_api: StartApi,
    start_proxy: proxy_fixtures.StartProxy,
    org: IssuedKey,
    lectr_settings: Settings,
) -> Running:
    proxy = await start_proxy()
    api = await start_api(
        settings=dataclasses.replace(lectr_settings, broker_prefix=proxy.names.prefix)
    )
    return Running(api, proxy, org)


async def within_deadline(started: float, done: Callable[[], Awaitable[bool]], what: str) -> None:
    while not await done():
        assert time.monotonic() - started < DEADLINE_S, f"{what} not within {DEADLINE_S} s"
        await asyncio.sleep(0.02)


async def test_a_rule_created_through_the_api_changes_the_proxys_routing(
    running: Running, fake: FakeProviders
) -> None:
    async def routed_to_mini() -> bool:
        assert await running.status() == 200
        return fake.last.json()["model"] == "gpt-4o-mini"

    assert not await routed_to_mini()
    rule = {"name": "mini", "match_model": "gpt-4o", "target_model": "gpt-4o-mini"}
    started = await running.change("POST", f"/api/orgs/{running.org.org_id}/rules", rule)
    await within_deadline(started, routed_to_mini, "the rule")


async def test_a_key_revoked_through_the_api_is_refused_by_the_proxy(running: Running) -> None:
    assert await running.status() == 200
    path = f"/api/orgs/{running.org.org_id}/keys/{running.org.key_id}"
    started = await running.change("DELETE", path, None)
    await within_deadline(started, running.answers(401, "invalid_lectr_key"), "the revocation")


async def test_an_org_disabled_through_the_api_is_refused_and_enabled_again(
    running: Running,
) -> None:
    path = f"/api/orgs/{running.org.org_id}"
    assert await running.status() == 200
    started = await running.change("PATCH", path, {"status": "disabled"})
    await within_deadline(started, running.answers(401, "org_disabled"), "disabling")
    started = await running.change("PATCH", path, {"status": "active"})
    await within_deadline(started, running.answers(200, None), "enabling")


async def test_a_rate_limit_set_through_the_api_applies_in_the_proxy(running: Running) -> None:
    assert await running.status() == 200
    started = await running.change(
        "PATCH", f"/api/orgs/{running.org.org_id}", {"rate_limit_rpm": 1}
    )

    await within_deadline(started, running.answers(429, "rate_limit_exceeded"), "the rate limit")
