"""An org's routing rules: list, create, read, change, delete, reorder, and dry-run a
draft.

Every change and its audit row share one transaction; once committed, the running
proxies are told to reload the org's rules (``rules`` on ``lectr.control``). A broker
outage only delays that: the change stands and the response says so in ``proxies``.
Every query names the path's org, so another org's rule id is a 404.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from api import audit
from api.body import parse_body
from api.dry_run import dry_run
from api.errors import ApiError, not_found
from api.routes_table import POOL, PUBLISHER, RELOAD_PENDING, Route, caller, path_uuid, reply
from api.schemas_rules import (
    DryRun,
    Rule,
    RuleChanged,
    RuleCreate,
    RuleDeleted,
    RuleDraft,
    RuleList,
    RuleOrder,
    RulePatch,
    RulesReordered,
)

_COLUMNS = ", ".join(Rule.model_fields)
# The order the proxy tries an org's rules in (proxy.caches loads them so).
_ORDER = "ORDER BY priority, created_at, id"
_CACHES = ("rules",)


async def list_rules(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        rows = await _all_rules(conn, path_uuid(request, "org"))
    return reply(RuleList(rules=rows))


async def _all_rules(conn: asyncpg.Connection, org_id: uuid.UUID) -> list[Rule]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM routing_rules WHERE org_id = $1 {_ORDER}", org_id
    )
    return [Rule.model_validate(dict(r)) for r in rows]


async def _rule_row(
    conn: asyncpg.Connection, org_id: uuid.UUID, rule_id: uuid.UUID, *, lock: bool = False
) -> dict[str, Any]:
    sql = f"SELECT {_COLUMNS} FROM routing_rules WHERE id = $1 AND org_id = $2"
    row = await conn.fetchrow(sql + (" FOR UPDATE" if lock else ""), rule_id, org_id)
    if row is None:
        raise not_found("no such rule")
    return dict(row)


async def create(request: web.Request) -> web.Response:
    org_id = path_uuid(request, "org")
    body = await parse_body(request, RuleCreate)
    values = body.model_dump()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if values["priority"] is None:  # after every rule the org has
            values["priority"] = await conn.fetchval(
                "SELECT coalesce(max(priority), 0) + 1 FROM routing_rules WHERE org_id = $1",
                org_id,
            )
        names = list(values)
        row = await conn.fetchrow(
            f"INSERT INTO routing_rules (org_id, {', '.join(names)}) "
            f"VALUES ($1, {', '.join(f'${i}' for i in range(2, len(names) + 2))}) "
            f"RETURNING {_COLUMNS}",
            org_id,
            *values.values(),
        )
        await audit.record(conn, caller(request), org_id=org_id, action="rule.create",
                           object_type="rule", object_id=row["id"], changes=values)  # fmt: skip
    proxies = await _tell_proxies(request, org_id)
    return reply(RuleChanged(**dict(row), proxies=proxies), status=201)


async def get_rule(request: web.Request) -> web.Response:
    org_id, rule_id = path_uuid(request, "org"), path_uuid(request, "id")
    async with request.app[POOL].acquire() as conn:
        row = await _rule_row(conn, org_id, rule_id)
    return reply(Rule.model_validate(row))


async def patch(request: web.Request) -> web.Response:
    org_id, rule_id = path_uuid(request, "org"), path_uuid(request, "id")
    body = await parse_body(request, RulePatch)
    wanted = body.model_dump(include=body.model_fields_set)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        before = await _rule_row(conn, org_id, rule_id, lock=True)
        merged = {**before, **wanted}
        if merged["target_provider"] is None and merged["target_model"] is None:
            field = "target_model" if "target_model" in wanted else "target_provider"
            raise ApiError("invalid_request", "a rule needs target_provider or target_model",
                           field=field)  # fmt: skip
        changes = audit.diff(before, wanted)
        row = before
        if changes:
            names = list(changes)
            sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
            row = dict(
                await conn.fetchrow(
                    f"UPDATE routing_rules SET {sets}, updated_at = now() WHERE id = $1 "
                    f"RETURNING {_COLUMNS}",
                    rule_id,
                    *(wanted[name] for name in names),
                )
            )
            await audit.record(conn, caller(request), org_id=org_id, action="rule.update",
                               object_type="rule", object_id=rule_id,
                               changes=changes)  # fmt: skip
    proxies = await _tell_proxies(request, org_id) if changes else None
    return reply(RuleChanged(**row, proxies=proxies))


async def delete(request: web.Request) -> web.Response:
    org_id, rule_id = path_uuid(request, "org"), path_uuid(request, "id")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        name = await conn.fetchval(
            "DELETE FROM routing_rules WHERE id = $1 AND org_id = $2 RETURNING name",
            rule_id,
            org_id,
        )
        if name is None:
            raise not_found("no such rule")
        await audit.record(conn, caller(request), org_id=org_id, action="rule.delete",
                           object_type="rule", object_id=rule_id,
                           changes={"name": name})  # fmt: skip
    proxies = await _tell_proxies(request, org_id)
    return reply(RuleDeleted(id=rule_id, deleted=True, proxies=proxies))


async def reorder(request: web.Request) -> web.Response:
    """Priorities 1..n in the order given; the ids must be exactly the org's rules."""
    org_id = path_uuid(request, "org")
    ids = (await parse_body(request, RuleOrder)).ids
    async with request.app[POOL].acquire() as conn, conn.transaction():
        current = [
            r["id"]
            for r in await conn.fetch(
                f"SELECT id FROM routing_rules WHERE org_id = $1 {_ORDER} FOR UPDATE", org_id
            )
        ]
        if len(ids) != len(set(ids)) or set(ids) != set(current):
            raise ApiError("invalid_request", "ids must list each of the org's rules once",
                           field="ids")  # fmt: skip
        await conn.execute(
            "UPDATE routing_rules r SET priority = o.n, updated_at = now() "
            "FROM unnest($1::uuid[]) WITH ORDINALITY AS o(id, n) "
            "WHERE r.id = o.id AND r.org_id = $2 AND r.priority <> o.n",
            ids,
            org_id,
        )
        await audit.record(conn, caller(request), org_id=org_id, action="rule.reorder",
                           object_type="rule", object_id=None,
                           changes={"ids": {"old": current, "new": ids}})  # fmt: skip
        rules = await _all_rules(conn, org_id)
    proxies = await _tell_proxies(request, org_id)
    return reply(RulesReordered(rules=rules, proxies=proxies))


async def dry_run_draft(request: web.Request) -> web.Response:
    org_id = path_uuid(request, "org")
    draft = await parse_body(request, RuleDraft)
    async with request.app[POOL].acquire() as conn:
        result = await dry_run(conn, org_id, draft, datetime.now(UTC))
    return reply(result)


async def _tell_proxies(request: web.Request, org_id: uuid.UUID) -> str | None:
    """None once the proxies were told; else what the response says about it."""
    published = await request.app[PUBLISHER](org_id, _CACHES)
    return None if published else RELOAD_PENDING


_RULES = "/api/orgs/{org}/rules"

ROUTES_RULES = [
    Route("GET", _RULES, list_rules, "The org's routing rules in priority order", "viewer",
          response_model=RuleList),
    Route("POST", _RULES, create,
          "Create a routing rule (proxies apply it at once; no priority: after the others)",
          "admin", request_model=RuleCreate, response_model=RuleChanged, status=201),
    Route("PUT", f"{_RULES}/order", reorder,
          "Reorder the org's rules: every rule id once, first to run first", "admin",
          request_model=RuleOrder, response_model=RulesReordered),
    Route("POST", f"{_RULES}/dry-run", dry_run_draft,
          "What a draft rule would have matched over the last 7 days of rollups, and the "
          "cost before and after at current prices, per model", "admin",
          request_model=RuleDraft, response_model=DryRun),
    Route("GET", f"{_RULES}/{{id}}", get_rule, "One routing rule", "viewer",
          response_model=Rule),
    Route("PATCH", f"{_RULES}/{{id}}", patch,
          "Change a routing rule, or enable or disable it (proxies apply it at once)",
          "admin", request_model=RulePatch, response_model=RuleChanged),
    Route("DELETE", f"{_RULES}/{{id}}", delete, "Delete a routing rule", "admin",
          response_model=RuleDeleted),
]  # fmt: skip
