"""``schemathesis run`` against the real ``lectr api``: every operation of
``/api/openapi.json``, called as the operator, answers no 5xx and only what the document
says (a documented status, its content type, a body matching its schema).

The API and schemathesis both run as subprocesses, as an operator would run them.
Operations come from the served document, so routes added later are tested without
touching this file. ``{org}`` is a real org made through the API (with a rule, a key,
an Azure configuration, an anomaly, a recommendation, a member and an invite), so
requests get past the membership check to the handlers; deleting an org itself gets an
org of its own, so the others keep theirs. An ``{id}`` is one of those objects where
:data:`SEEDED_IDS` names its kind, else whatever schemathesis makes up (a 404, which the
document lists).
Generation is deterministic (a fixed seed, derandomized, no example database) and
bounded by :data:`MAX_EXAMPLES` per operation and phase.

``/api/session`` (operators' sign-in) runs last, on its own: each random secret is a
failed sign-in, and ten block the address for a minute, bearer tokens included, which
would leave the other operations nothing but 429. Its 401s are its point (no cookie, a
wrong secret), not missing credentials, so ``missing_auth`` does not fail that run.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
import requests

from lectr.db import asyncpg_dsn
from tests.api.conftest import ApiClient, seed_org_data
from tests.support.processes import free_port, start_lectr, wait_for_health

ADMIN_SECRET = "schemathesis-operator-secret-0123456789"
OPERATOR = {"Authorization": f"Bearer {ADMIN_SECRET}"}
SCHEMATHESIS = (sys.executable, "-m", "schemathesis.cli")
MAX_EXAMPLES = 25
SEED = 20240601
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
# Path regex of the operations whose ``{id}`` is the seeded object of that kind.
SEEDED_IDS = {
    "rule": "^/api/orgs/{org}/rules/{id}$",
    "key": "^/api/orgs/{org}/keys/{id}$",
    "anomaly": "^/api/orgs/{org}/anomalies/{id}/",
    "recommendation": "^/api/orgs/{org}/recommendations/{id}/",
    "member": "^/api/orgs/{org}/members/{id}$",
    "invite": "^/api/orgs/{org}/invites/{id}$",
}
# Warnings that mean the run did not test what it claims to (bad credentials, a
# document schemathesis cannot read); "missing test data" (404s for random ids) is not.
FAIL_ON_WARNINGS = (
    "missing_auth",
    "base_url_mismatch",
    "missing_deserializer",
    "unsupported_regex",
    "unresolvable_reference",
    "unmatched_filter",
)
SESSION_PATH = "/api/session"


@pytest.fixture
def api_url(lectr_env: dict[str, str]) -> Iterator[str]:
    """``lectr api`` on a free port against the session database, stopped afterwards."""
    port = free_port()
    env = {**lectr_env, "LECTR_API_PORT": str(port), "LECTR_ADMIN_SECRET": ADMIN_SECRET}
    process = start_lectr(["api"], env)
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(wait_for_health(f"{url}/api", process, timeout_s=30))
        yield url
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr


def post(url: str, body: object, status: int = 201) -> dict[str, Any]:
    response = requests.post(url, json=body, headers=OPERATOR, timeout=10)
    assert response.status_code == status, response.text
    return response.json()


def put(url: str, body: object) -> None:
    response = requests.put(url, json=body, headers=OPERATOR, timeout=10)
    assert response.status_code == 200, response.text


def make_org(api_url: str) -> str:
    return post(f"{api_url}/api/orgs", {"name": f"st-{uuid.uuid4().hex[:12]}"})["id"]


def seed(api_url: str, database_url: str) -> dict[str, str]:
    """An org with one object of each kind; their ids by kind (``org``, ``rule``...)."""
    org = make_org(api_url)
    base = f"{api_url}/api/orgs/{org}"
    ids = {"org": org, "doomed_org": make_org(api_url)}
    ids["rule"] = post(f"{base}/rules", {"name": "cheaper", "target_model": "gpt-4o-mini"})["id"]
    ids["key"] = post(f"{base}/keys", {"name": "spare"})["id"]
    put(f"{base}/providers/azure", {"endpoint": "https://lectr.openai.azure.com",
                                    "api_version": "2024-10-21"})  # fmt: skip

    async def rows() -> dict[str, uuid.UUID]:
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            found = await seed_org_data(conn, uuid.UUID(org))
            found["member"] = await conn.fetchval(
                "INSERT INTO org_members (org_id, email, role) "
                "VALUES ($1, 'member@example.com', 'member') RETURNING id",
                uuid.UUID(org),
            )
            # An invite whose token nobody has (the API would email one).
            found["invite"] = await conn.fetchval(
                "INSERT INTO org_invites (org_id, email, role, token_hash, expires_at) "
                "VALUES ($1, 'invitee@example.com', 'viewer', $2, now() + interval '1 day') "
                "RETURNING id",
                uuid.UUID(org),
                uuid.uuid4().hex * 2,
            )
            return found
        finally:
            await conn.close()

    ids.update({kind: str(row_id) for kind, row_id in asyncio.run(rows()).items()})
    return ids


def config_toml(ids: dict[str, str], fail_on: tuple[str, ...] = FAIL_ON_WARNINGS) -> str:
    """schemathesis.toml: the operator's header, the seeded ids, determinism, checks,
    the warnings that fail the run."""
    checks = "\n".join(f"[checks.{name}]\nenabled = true" for name in CHECKS)
    seeded = "\n".join(
        f"[[operations]]\ninclude-path-regex = {_toml(regex)}\n"
        f'parameters = {{ "path.id" = {_toml(ids[kind])} }}\n'
        for kind, regex in SEEDED_IDS.items()
    )
    return f"""
seed = {SEED}
workers = 1
headers = {{ Authorization = {_toml(OPERATOR["Authorization"])} }}
warnings = {{ fail-on = {_toml(list(fail_on))} }}

[generation]
max-examples = {MAX_EXAMPLES}
deterministic = true
database = "none"

[phases.stateful]
enabled = false

[checks]
enabled = false

{checks}

[parameters]
"path.org" = {_toml(ids["org"])}

[[operations]]
include-name = "DELETE /api/orgs/{{org}}"
parameters = {{ "path.org" = {_toml(ids["doomed_org"])} }}

{seeded}"""


def _toml(value: object) -> str:
    return orjson.dumps(value).decode()  # a JSON string or list of strings is valid TOML


def schemathesis_run(
    api_url: str, config: Path, options: list[str], timeout_s: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SCHEMATHESIS, "--config-file", str(config), "--no-color", "run", *options,
         f"{api_url}/api/openapi.json"],
        capture_output=True, text=True, timeout=timeout_s, cwd=config.parent,
    )  # fmt: skip


@pytest.mark.timeout(150)
def test_every_operation_answers_as_documented(
    api_url: str, database_url: str, tmp_path: Path
) -> None:
    ids = seed(api_url, database_url)
    config = tmp_path / "schemathesis.toml"
    config.write_text(config_toml(ids))
    result = schemathesis_run(api_url, config, ["--exclude-path", SESSION_PATH], 100)
    assert result.returncode == 0, result.stdout + result.stderr

    sessions = tmp_path / "sessions" / "schemathesis.toml"
    sessions.parent.mkdir()
    fail_on = tuple(w for w in FAIL_ON_WARNINGS if w != "missing_auth")
    sessions.write_text(config_toml(ids, fail_on))
    result = schemathesis_run(api_url, sessions, ["--include-path", SESSION_PATH], 40)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Tested: 3" in result.stdout, result.stdout


# What schemathesis found, pinned: each was a 500 before.


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/orgs", {"name": "a\x00b"}, "name"),
        ("/api/orgs/{org}/keys", {"name": "a\x00b"}, "name"),
        ("/api/orgs/{org}/rules", {"name": "r", "target_model": "\x00"}, "target_model"),
    ],
)
async def test_a_nul_character_in_a_body_is_400_naming_the_field(
    api: ApiClient, path: str, body: dict[str, Any], field: str
) -> None:
    org = (await api.make_org())["id"]
    reply = await api.call("POST", path.format(org=org), json=body)
    assert reply.status == 400, reply.body
    assert reply.body["error"]["field"] == field


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("feature=a%00b", "feature"),
        ("until=0001-01-01T06:00:00Z", "until"),
        ("until=9999-12-31T23:59:59-05:00", "until"),
    ],
)
@pytest.mark.parametrize("read", ["requests", "failures"])
async def test_odd_filters_of_the_request_log_are_400_naming_the_field(
    api: ApiClient, read: str, query: str, field: str
) -> None:
    org = (await api.make_org())["id"]
    reply = await api.call("GET", f"/api/orgs/{org}/{read}?{query}")
    assert reply.status == 400, reply.body
    assert reply.body["error"] == {
        "type": "invalid_request_error",
        "code": "invalid_request",
        "message": reply.body["error"]["message"],
        "field": field,
    }
