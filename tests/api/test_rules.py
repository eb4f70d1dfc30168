"""Routing rules through the API: create, read, change, reorder, delete (audited, and
the proxies told), a draft's dry run against a hand computation on seeded rollups,
the dry run's matcher against the proxy's (a running proxy: ``test_live_reload``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from api.dry_run import StoredRule, matches
from api.routes_table import RELOAD_PENDING
from proxy.caches import Rule as ProxyRule
from proxy.providers import PROVIDERS
from proxy.routing import matching_rule
from schema.latency import BUCKET_COUNT
from schema.provider_names import PROVIDER_NAMES
from tests.api.conftest import ApiClient, AsMember, StartApi, audit_trail

Published = list[tuple[uuid.UUID, tuple[str, ...]]]


@pytest.fixture
async def recorded(start_api: StartApi) -> tuple[ApiClient, Published]:
    """An API whose publisher records what it tells the proxies."""
    published: Published = []

    async def publish(org_id: uuid.UUID, caches: tuple[str, ...]) -> bool:
        published.append((org_id, caches))
        return True

    return await start_api(publisher=publish), published


def _rules(org: dict[str, Any]) -> str:
    return f"/api/orgs/{org['id']}/rules"


async def _create(api: ApiClient, org: dict[str, Any], **fields: Any) -> dict[str, Any]:
    reply = await api.call("POST", _rules(org), json={"name": "r", **fields})
    assert reply.status == 201, reply.body
    return reply.body


async def test_create_read_change_delete_is_audited_and_tells_the_proxies(
    recorded: tuple[ApiClient, Published], db: asyncpg.Connection
) -> None:
    api, published = recorded
    org = await api.make_org()
    org_id = uuid.UUID(org["id"])
    first = await api.call(
        "POST",
        _rules(org),
        json={"name": "cheap search", "match_feature": "search", "target_model": "gpt-4o-mini"},
    )
    assert first.status == 201
    body = first.body
    assert (body["priority"], body["enabled"], body["match_feature"]) == (1, True, "search")
    assert (body["target_provider"], body["target_model"]) == (None, "gpt-4o-mini")
    assert body["proxies"] is None
    second = await _create(api, org, target_provider="anthropic", match_task="code")
    assert second["priority"] == 2  # no priority: after the others
    early = await _create(api, org, priority=0, target_provider="groq")

    listed = await api.call("GET", _rules(org))
    assert [r["id"] for r in listed.body["rules"]] == [early["id"], body["id"], second["id"]]
    one = await api.call("GET", f"{_rules(org)}/{body['id']}")
    assert one.status == 200
    assert one.body == {k: v for k, v in body.items() if k != "proxies"}

    disabled = await api.call(
        "PATCH", f"{_rules(org)}/{body['id']}", json={"enabled": False, "match_model": "gpt-4o"}
    )
    assert disabled.status == 200
    assert (disabled.body["enabled"], disabled.body["match_model"]) == (False, "gpt-4o")
    assert disabled.body["updated_at"] > body["updated_at"]
    assert (await api.call("GET", f"{_rules(org)}/{body['id']}")).body["enabled"] is False

    deleted = await api.call("DELETE", f"{_rules(org)}/{second['id']}")
    assert deleted.status == 200
    assert deleted.body == {"id": second["id"], "deleted": True, "proxies": None}
    assert (await api.call("GET", f"{_rules(org)}/{second['id']}")).status == 404

    audit = await audit_trail(db, org["id"], "rule.%")
    assert [a for a, _ in audit] == ["rule.create"] * 3 + ["rule.update", "rule.delete"]
    assert audit[0][1]["match_feature"] == "search"
    assert audit[3][1] == {
        "enabled": {"old": True, "new": False},
        "match_model": {"old": None, "new": "gpt-4o"},
    }
    assert published == [(org_id, ("rules",))] * 5


async def test_a_patch_that_changes_nothing_is_not_audited_nor_published(
    recorded: tuple[ApiClient, Published], db: asyncpg.Connection
) -> None:
    api, published = recorded
    org = await api.make_org()
    rule = await _create(api, org, target_model="gpt-4o-mini")
    reply = await api.call("PATCH", f"{_rules(org)}/{rule['id']}", json={"enabled": True})
    assert reply.status == 200
    assert [a for a, _ in await audit_trail(db, org["id"], "rule.%")] == ["rule.create"]
    assert len(published) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "no action", "match_feature": "chat"}, "target_model"),
        ({"name": "x", "target_provider": "nope"}, "target_provider"),
        ({"name": "x", "target_provider": "OpenAI"}, "target_provider"),
        ({"name": "x", "match_provider": "bedrock", "target_model": "m"}, "match_provider"),
        ({"name": "x", "target_model": "m", "colour": "red"}, "colour"),
        ({"target_model": "m"}, "name"),
        ({"name": " ", "target_model": "m"}, "name"),
        ({"name": "x", "target_model": "m", "priority": -1}, "priority"),
        ({"name": "x", "target_model": "m", "enabled": "yes"}, "enabled"),
        ({"name": "x", "target_model": "m", "match_feature": ""}, "match_feature"),
    ],
)
async def test_a_bad_rule_is_400_naming_the_field_and_nothing_is_saved(
    api: ApiClient, db: asyncpg.Connection, body: dict[str, Any], field: str
) -> None:
    org = await api.make_org()
    for path in (_rules(org), f"{_rules(org)}/dry-run"):
        reply = await api.call("POST", path, json=body)
        assert reply.status == 400, reply.body
        assert reply.body["error"]["field"] == field
    count = "SELECT count(*) FROM routing_rules WHERE org_id = $1"
    assert await db.fetchval(count, uuid.UUID(org["id"])) == 0


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"target_model": None}, "target_model"),
        ({"name": None}, "name"),
        ({"enabled": None}, "enabled"),
        ({"target_provider": "bedrock"}, "target_provider"),
        ({"priority": "1"}, "priority"),
        ({"id": str(uuid.uuid4())}, "id"),
    ],
)
async def test_a_bad_patch_is_400_naming_the_field_and_changes_nothing(
    api: ApiClient, patch: dict[str, Any], field: str
) -> None:
    org = await api.make_org()
    rule = await _create(api, org, target_model="gpt-4o-mini")
    reply = await api.call("PATCH", f"{_rules(org)}/{rule['id']}", json=patch)
    assert reply.status == 400, reply.body
    assert reply.body["error"]["field"] == field
    after = (await api.call("GET", f"{_rules(org)}/{rule['id']}")).body
    assert after == {k: v for k, v in rule.items() if k != "proxies"}


async def test_a_patch_may_swap_the_action(api: ApiClient) -> None:
    org = await api.make_org()
    rule = await _create(api, org, target_model="gpt-4o-mini")
    reply = await api.call(
        "PATCH",
        f"{_rules(org)}/{rule['id']}",
        json={"target_model": None, "target_provider": "mistral"},
    )
    assert reply.status == 200, reply.body
    assert (reply.body["target_provider"], reply.body["target_model"]) == ("mistral", None)


async def test_another_orgs_or_an_unknown_rule_is_404_and_untouched(
    api: ApiClient, db: asyncpg.Connection
) -> None:
    mine, theirs = await api.make_org(), await api.make_org()
    rule = await _create(api, theirs, target_model="gpt-4o-mini")
    for ref in (rule["id"], str(uuid.uuid4()), "not-a-uuid"):
        path = f"{_rules(mine)}/{ref}"
        for method, body in (("GET", None), ("PATCH", {"enabled": False}), ("DELETE", None)):
            reply = await api.call(method, path, json=body)
            assert reply.status == 404, (method, ref)
            assert reply.body["error"]["code"] == "not_found"
    row = await db.fetchrow(
        "SELECT enabled FROM routing_rules WHERE id = $1", uuid.UUID(rule["id"])
    )
    assert row["enabled"] is True
    assert (await api.call("GET", f"/api/orgs/{uuid.uuid4()}/rules")).status == 404


async def test_reorder_rewrites_priorities_in_the_given_order(
    recorded: tuple[ApiClient, Published], db: asyncpg.Connection
) -> None:
    api, published = recorded
    org, other = await api.make_org(), await api.make_org()
    ids = [(await _create(api, org, target_model=f"m{i}"))["id"] for i in range(3)]
    theirs = (await _create(api, other, target_model="m"))["id"]
    published.clear()

    for bad in ([ids[0], ids[1]], [*ids, theirs], [ids[0], ids[0], ids[1], ids[2]],
                [ids[0], ids[1], theirs], ["not-a-uuid"]):  # fmt: skip
        reply = await api.call("PUT", f"{_rules(org)}/order", json={"ids": bad})
        assert reply.status == 400, bad
        assert reply.body["error"]["field"].startswith("ids")
    assert published == []

    wanted = [ids[2], ids[0], ids[1]]
    reply = await api.call("PUT", f"{_rules(org)}/order", json={"ids": wanted})
    assert reply.status == 200
    assert [(r["id"], r["priority"]) for r in reply.body["rules"]] == [
        (wanted[0], 1), (wanted[1], 2), (wanted[2], 3)
    ]  # fmt: skip
    listed = (await api.call("GET", _rules(org))).body["rules"]
    assert [r["id"] for r in listed] == wanted
    assert published == [(uuid.UUID(org["id"]), ("rules",))]
    action, changes = (await audit_trail(db, org["id"], "rule.%"))[-1]
    assert action == "rule.reorder"
    assert changes == {"ids": {"old": ids, "new": wanted}}
    # The other org's rule kept its priority.
    assert (
        await db.fetchval("SELECT priority FROM routing_rules WHERE id = $1", uuid.UUID(theirs))
        == 1
    )


async def test_with_the_broker_down_the_change_stands_and_the_reply_says_so(
    start_api: StartApi, db: asyncpg.Connection
) -> None:
    async def broker_down(org_id: uuid.UUID, caches: tuple[str, ...]) -> bool:
        return False

    api = await start_api(publisher=broker_down)
    org = await api.make_org()
    rule = await _create(api, org, target_model="gpt-4o-mini")
    assert rule["proxies"] == RELOAD_PENDING
    patched = await api.call("PATCH", f"{_rules(org)}/{rule['id']}", json={"enabled": False})
    assert patched.body["proxies"] == RELOAD_PENDING
    order = await api.call("PUT", f"{_rules(org)}/order", json={"ids": [rule["id"]]})
    assert order.body["proxies"] == RELOAD_PENDING
    deleted = await api.call("DELETE", f"{_rules(org)}/{rule['id']}")
    assert (deleted.status, deleted.body["proxies"]) == (200, RELOAD_PENDING)
    assert [a for a, _ in await audit_trail(db, org["id"], "rule.%")] == [
        "rule.create", "rule.update", "rule.reorder", "rule.delete"
    ]  # fmt: skip


async def test_rules_need_credentials(api: ApiClient) -> None:
    org = await api.make_org()
    for method, path in (("GET", _rules(org)), ("POST", f"{_rules(org)}/dry-run")):
        reply = await api.call(method, path, json={}, anonymous=True)
        assert reply.status == 401


async def test_an_oidc_viewer_reads_rules_but_may_not_change_them(
    as_member: AsMember, api: ApiClient
) -> None:
    org = await api.make_org()
    rule = await _create(api, org, target_model="gpt-4o-mini")
    user = await as_member(org["id"], "viewer")
    assert (await user.call("GET", _rules(org))).status == 200
    assert (await user.call("GET", f"{_rules(org)}/{rule['id']}")).status == 200
    draft = {"name": "x", "target_model": "m"}
    writes = [
        ("POST", _rules(org), draft),
        ("POST", f"{_rules(org)}/dry-run", draft),
        ("PATCH", f"{_rules(org)}/{rule['id']}", {"enabled": False}),
        ("DELETE", f"{_rules(org)}/{rule['id']}", None),
        ("PUT", f"{_rules(org)}/order", {"ids": [rule["id"]]}),
    ]
    for method, path, body in writes:
        reply = await user.call(method, path, json=body)
        assert reply.status == 403, (method, path)
        assert reply.body["error"]["code"] == "forbidden"


# The dry run's matcher and the proxy's


def test_the_api_knows_the_proxys_providers() -> None:
    assert set(PROVIDER_NAMES) == set(PROVIDERS)


_CONDITIONS = [
    {},
    {"match_feature": "chat"},
    {"match_feature": "Chat"},
    {"match_task": "summarise"},
    {"match_provider": "openai"},
    {"match_model": "gpt-4o"},
    {"match_model": "GPT-4o"},
    {"match_feature": "chat", "match_task": "summarise", "match_provider": "openai",
     "match_model": "gpt-4o"},
    {"match_feature": "untagged", "match_model": "gpt-4o"},
]  # fmt: skip
# (feature, task, provider, model) as the proxy sees a request; the rollup stores a
# missing task or model as ''.
_REQUESTS = [
    ("chat", "summarise", "openai", "gpt-4o"),
    ("chat", None, "openai", "gpt-4o"),
    ("chat", "summarise", "anthropic", "gpt-4o"),
    ("untagged", None, "openai", None),
    ("untagged", None, "openai", "gpt-4o"),
    ("chat", "", "openai", "gpt-4o-mini"),
]


@pytest.mark.parametrize("conditions", _CONDITIONS)
@pytest.mark.parametrize("request_keys", _REQUESTS)
def test_the_dry_run_matches_rollup_keys_as_the_proxy_matches_requests(
    conditions: dict[str, str], request_keys: tuple[str, str | None, str, str | None]
) -> None:
    feature, task, provider, model = request_keys
    fields = {c: conditions.get(c) for c in ("match_feature", "match_task", "match_provider",
                                              "match_model")}  # fmt: skip
    proxy_rule = ProxyRule(uuid.uuid4(), 1, **fields, target_provider=None, target_model="m")
    by_proxy = matching_rule([proxy_rule], feature, task or None, provider, model) is not None
    by_api = matches(StoredRule(**fields), feature, task or "", provider, model or "")
    assert by_api == by_proxy


# The dry run against a hand computation


async def _seed_prices(db: asyncpg.Connection, tag: str) -> tuple[str, str, str]:
    """Prices of three new models: big (current, with an old and a future price),
    small (no cached price) and none for mystery."""
    big, small, mystery = f"big-{tag}", f"small-{tag}", f"mystery-{tag}"
    now = datetime.now(UTC)
    rows = [
        (big, now - timedelta(days=30), 100, 300, 50),
        (big, now - timedelta(days=1), 10, 30, 5),
        (big, now + timedelta(days=1), 1000, 3000, 500),
        (small, now - timedelta(days=1), 1, 2, None),
    ]
    for model, since, inp, out, cached in rows:
        await db.execute(
            "INSERT INTO model_pricing (provider, model, effective_from, input_per_mtok,"
            " output_per_mtok, cached_input_per_mtok, source) VALUES"
            " ('openai', $1, $2, $3, $4, $5, 'test')",
            model, since, inp, out, cached,
        )  # fmt: skip
    return big, small, mystery


async def _rollup(db: asyncpg.Connection, org_id: uuid.UUID, hours_ago: int, feature: str,
                  provider: str, model: str, task: str, requests: int, inp: int = 0,
                  cached: int = 0, out: int = 0) -> None:  # fmt: skip
    await db.execute(
        "INSERT INTO request_rollups (bucket_start, org_id, feature, provider, model,"
        " task_type, status_class, request_count, input_tokens, cached_tokens, output_tokens,"
        " cost_usd, latency_histogram) VALUES (date_trunc('hour', now()) - $2 * interval"
        " '1 hour', $1, $3, $4, $5, $6, '2xx', $7, $8, $9, $10, 123.45, $11)",
        org_id, hours_ago, feature, provider, model, task, requests, inp, cached, out,
        [0] * BUCKET_COUNT,
    )  # fmt: skip


async def test_dry_run_figures_equal_a_hand_computation(
    api: ApiClient, db: asyncpg.Connection
) -> None:
    tag = uuid.uuid4().hex[:8]
    big, small, mystery = await _seed_prices(db, tag)
    try:
        await _check_dry_run(api, db, big, small, mystery)
    finally:
        await db.execute("DELETE FROM model_pricing WHERE model = ANY($1)", [big, small])


async def _check_dry_run(
    api: ApiClient, db: asyncpg.Connection, big: str, small: str, mystery: str
) -> None:
    org, other = await api.make_org(), await api.make_org()
    org_id = uuid.UUID(org["id"])
    await _create(api, org, priority=1, match_feature="search", target_model=small)
    disabled = await _create(api, org, priority=2, match_model=big, target_model=small)
    await api.call("PATCH", f"{_rules(org)}/{disabled['id']}", json={"enabled": False})
    await _create(api, org, priority=5, match_task="summarise", target_provider="anthropic")
    await _create(api, other, priority=0, target_model="anything")

    dated_small = f"{small}-2024-08-06"  # priced as its family name
    for args in [
        (2, "chat", "openai", big, "", 10, 1_000_000, 200_000, 500_000),
        (72, "chat", "openai", big, "", 5, 100_000, 0, 100_000),
        (3, "search", "openai", big, "", 100, 9, 9, 9),  # the priority-1 rule's
        (3, "chat", "anthropic", big, "", 7, 9, 9, 9),  # another provider
        (4, "chat", "openai", mystery, "summarise", 4, 9, 9, 9),  # no price
        (0, "chat", "openai", dated_small, "", 2, 1_000_000, 0, 0),
        (24 * 8, "chat", "openai", big, "", 1000, 9, 9, 9),  # before the window
        (-2, "chat", "openai", big, "", 1000, 9, 9, 9),  # after it
    ]:
        await _rollup(db, org_id, *args)
    await _rollup(db, uuid.UUID(other["id"]), 2, "chat", "openai", big, "", 50, 9, 9, 9)
    before = await db.fetchval("SELECT count(*) FROM audit_log WHERE org_id = $1", org_id)

    draft = {"name": "d", "priority": 3, "match_provider": "openai", "target_model": small}
    reply = await api.call("POST", f"{_rules(org)}/dry-run", json=draft)
    assert reply.status == 200, reply.body
    # big: 15 requests, 1.1M input of which 0.2M cached, 0.6M output.
    # before: 0.9 * 10 + 0.2 * 5 + 0.6 * 30 = 28; after (small, no cached price):
    # 0.9 * 1 + 0.2 * 1 + 0.6 * 2 = 2.3. dated small: 1M input at 1 before and after.
    assert reply.body["by_model"] == [
        {"model": big, "requests": 15, "cost_before_usd": 28.0, "cost_after_usd": 2.3,
         "unpriced_requests": 0},
        {"model": mystery, "requests": 4, "cost_before_usd": 0.0, "cost_after_usd": 0.0,
         "unpriced_requests": 4},
        {"model": dated_small, "requests": 2, "cost_before_usd": 1.0, "cost_after_usd": 1.0,
         "unpriced_requests": 0},
    ]  # fmt: skip
    assert reply.body["matched_requests"] == 21
    assert (reply.body["cost_before_usd"], reply.body["cost_after_usd"]) == (29.0, 3.3)
    start = datetime.fromisoformat(reply.body["window_start"])
    end = datetime.fromisoformat(reply.body["window_end"])
    assert end - start == timedelta(days=7)
    assert (end.minute, end.second, end.microsecond) == (0, 0, 0)
    assert end > datetime.now(UTC) > end - timedelta(hours=1)

    # Without a priority the draft comes after every enabled rule: the summarise rule
    # (priority 5) takes the mystery requests.
    reply = await api.call("POST", f"{_rules(org)}/dry-run", json={**draft, "priority": None})
    assert [m["model"] for m in reply.body["by_model"]] == [big, dated_small]
    assert reply.body["matched_requests"] == 17

    # Editing the priority-5 rule: with ``replaces`` it is not tried before its own draft,
    # so the draft in its place takes the mystery requests back.
    summarise = next(r for r in (await api.call("GET", _rules(org))).body["rules"]
                     if r["priority"] == 5)  # fmt: skip
    edit = {**draft, "priority": 5, "replaces": summarise["id"]}
    reply = await api.call("POST", f"{_rules(org)}/dry-run", json=edit)
    assert reply.status == 200, reply.body
    assert reply.body["matched_requests"] == 21
    reply = await api.call("POST", f"{_rules(org)}/dry-run", json={**edit, "replaces": None})
    assert reply.body["matched_requests"] == 17

    # A dry run changes nothing.
    assert await db.fetchval("SELECT count(*) FROM routing_rules WHERE org_id = $1", org_id) == 3
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE org_id = $1", org_id) == before


async def test_dry_run_of_an_org_without_traffic_is_zeros(api: ApiClient) -> None:
    org = await api.make_org()
    draft = {"name": "d", "target_provider": "anthropic"}
    reply = await api.call("POST", f"{_rules(org)}/dry-run", json=draft)
    assert reply.status == 200
    assert (reply.body["matched_requests"], reply.body["by_model"]) == (0, [])
    assert (reply.body["cost_before_usd"], reply.body["cost_after_usd"]) == (0.0, 0.0)
