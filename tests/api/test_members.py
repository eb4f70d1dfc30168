"""Members and invites: roles and the owner rules, invite emails through a real local
SMTP server, tokens that work once and not after expiry, and what is audited."""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from typing import Any

import asyncpg
import pytest

from api.settings import ApiSettings
from lectr.keys import hash_key
from lectr.mail import MailSettings
from lectr.settings import Settings
from tests.api.conftest import PEPPER, ApiClient, AsMember, StartApi, audit_trail
from tests.support.processes import free_port
from tests.support.smtp import SmtpServer

DASHBOARD = "https://lectr.example.com"
_TOKEN = re.compile(r"/invites/accept#token=(lc_inv_[A-Za-z0-9_-]+)")


async def member_id(db: asyncpg.Connection, org_id: str, email: str) -> str:
    found = await db.fetchval(
        "SELECT id FROM org_members WHERE org_id = $1 AND email = $2", uuid.UUID(org_id), email
    )
    return str(found)


async def add(db: asyncpg.Connection, org_id: str, role: str) -> tuple[str, str]:
    """A member row as ``lectr member add`` makes it: (id, email)."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    found = await db.fetchval(
        "INSERT INTO org_members (org_id, email, role) VALUES ($1, $2, $3) RETURNING id",
        uuid.UUID(org_id), email, role,
    )  # fmt: skip
    return str(found), email


# Members


async def test_a_viewer_lists_the_members_owners_first(
    api: ApiClient, as_member: AsMember, db: asyncpg.Connection
) -> None:
    org = (await api.make_org())["id"]
    await add(db, org, "member")
    _, owner_email = await add(db, org, "owner")
    viewer = await as_member(org, "viewer")
    reply = await viewer.call("GET", f"/api/orgs/{org}/members")
    assert reply.status == 200, reply.body
    listed = reply.body["members"]
    assert [m["role"] for m in listed] == ["owner", "member", "viewer"]
    assert listed[0]["email"] == owner_email
    assert set(listed[0]) == {"id", "email", "role", "oidc_subject", "created_at"}
    # The viewer has signed in, so their row carries their subject now.
    assert listed[2]["oidc_subject"] is not None and listed[0]["oidc_subject"] is None


async def test_an_admin_changes_roles_below_owner_and_it_is_audited(
    api: ApiClient, as_member: AsMember, db: asyncpg.Connection
) -> None:
    org = (await api.make_org())["id"]
    target, target_email = await add(db, org, "viewer")
    admin = await as_member(org, "admin")
    reply = await admin.call("PATCH", f"/api/orgs/{org}/members/{target}", json={"role": "admin"})
    assert (reply.status, reply.body["role"]) == (200, "admin"), reply.body
    # The same role again changes nothing and is not audited twice.
    again = await admin.call("PATCH", f"/api/orgs/{org}/members/{target}", json={"role": "admin"})
    assert again.status == 200
    assert await audit_trail(db, org, "member.%") == [
        ("member.update", {"email": target_email, "role": {"old": "viewer", "new": "admin"}})
    ]
    actor = await db.fetchval(
        "SELECT actor FROM audit_log WHERE org_id = $1 AND action = 'member.update'",
        uuid.UUID(org),
    )
    assert actor == f"user:{admin.email}"
    removed = await admin.call("DELETE", f"/api/orgs/{org}/members/{target}")
    assert (removed.status, removed.body["email"]) == (200, target_email)
    assert (
        await db.fetchval("SELECT count(*) FROM org_members WHERE id = $1", uuid.UUID(target)) == 0
    )
    assert (await audit_trail(db, org, "member.%"))[-1] == (
        "member.remove", {"email": target_email, "role": "admin"}
    )  # fmt: skip


async def test_only_an_owner_makes_changes_or_removes_an_owner(
    api: ApiClient, as_member: AsMember, db: asyncpg.Connection
) -> None:
    org = (await api.make_org())["id"]
    owner_id, _ = await add(db, org, "owner")
    member, _ = await add(db, org, "member")
    admin = await as_member(org, "admin")
    base = f"/api/orgs/{org}/members"
    for method, path, body in [
        ("PATCH", f"{base}/{member}", {"role": "owner"}),
        ("PATCH", f"{base}/{owner_id}", {"role": "admin"}),
        ("DELETE", f"{base}/{owner_id}", None),
    ]:
        reply = await admin.call(method, path, json=body)
        assert (reply.status, reply.body["error"]["code"]) == (403, "forbidden"), (method, path)
    roles = await db.fetch(
        "SELECT id::text, role FROM org_members WHERE org_id = $1", uuid.UUID(org)
    )
    assert {r["id"]: r["role"] for r in roles}[owner_id] == "owner"

    owner = await as_member(org, "owner")
    promoted = await owner.call("PATCH", f"{base}/{member}", json={"role": "owner"})
    assert (promoted.status, promoted.body["role"]) == (200, "owner")
    removed = await owner.call("DELETE", f"{base}/{owner_id}")
    assert removed.status == 200


async def test_the_last_owner_stays_even_for_an_operator(
    api: ApiClient, db: asyncpg.Connection
) -> None:
    org = (await api.make_org())["id"]
    owner, owner_email = await add(db, org, "owner")
    base = f"/api/orgs/{org}/members/{owner}"
    for method, body in [("PATCH", {"role": "admin"}), ("DELETE", None)]:
        reply = await api.call(method, base, json=body)
        assert (reply.status, reply.body["error"]["code"]) == (409, "conflict"), method
        assert "last owner" in reply.body["error"]["message"]
    second, _ = await add(db, org, "owner")
    assert (await api.call("PATCH", base, json={"role": "admin"})).status == 200
    # Now ``second`` is the last one.
    assert (await api.call("DELETE", f"/api/orgs/{org}/members/{second}")).status == 409
    demoted = {"email": owner_email, "role": {"old": "owner", "new": "admin"}}
    assert await audit_trail(db, org, "member.%") == [("member.update", demoted)]


async def test_unknown_and_other_orgs_members_are_404_and_a_bad_role_is_400(
    api: ApiClient, db: asyncpg.Connection
) -> None:
    org, other = (await api.make_org())["id"], (await api.make_org())["id"]
    theirs, _ = await add(db, other, "member")
    for path in (f"/api/orgs/{org}/members/{theirs}", f"/api/orgs/{org}/members/{uuid.uuid4()}",
                 f"/api/orgs/{org}/members/not-a-uuid"):  # fmt: skip
        for method, body in [("PATCH", {"role": "viewer"}), ("DELETE", None)]:
            reply = await api.call(method, path, json=body)
            assert (reply.status, reply.body["error"]["code"]) == (404, "not_found"), path
    assert await db.fetchval("SELECT role FROM org_members WHERE id = $1", uuid.UUID(theirs)) == (
        "member"
    )
    mine, _ = await add(db, org, "member")
    for body in ({"role": "god"}, {"role": 3}, {}, {"role": "viewer", "extra": 1}):
        reply = await api.call("PATCH", f"/api/orgs/{org}/members/{mine}", json=body)
        assert reply.status == 400, body
        assert reply.body["error"]["field"] in ("role", "extra"), body


# Invites


@dataclasses.dataclass
class Mailing:
    """An API that sends invites to a local SMTP server, at a clock the test sets.
    ``options`` start more apps like it (``as_member(org, role, **m.options)``)."""

    api: ApiClient
    smtp: SmtpServer
    clock: list[float]
    options: dict[str, Any]

    async def invite(self, org: str, email: str, role: str = "member") -> tuple[dict, str]:
        """Invite ``email`` as the API's caller; the reply and the token it was mailed."""
        reply = await self.api.call(
            "POST", f"/api/orgs/{org}/invites", json={"email": email, "role": role}
        )
        assert reply.status == 201, reply.body
        mail = [m for m in self.smtp.inbox.received if m.rcpt_tos == [email]][-1]
        found = _TOKEN.search(mail.part("plain"))
        assert found, mail.part("plain")
        return reply.body, found[1]


async def mailing(
    start_api: StartApi, lectr_settings: Settings, smtp: SmtpServer, smtp_url: str | None = None
) -> Mailing:
    clock = [time.time()]
    options = {
        "settings": dataclasses.replace(lectr_settings, dashboard_url=DASHBOARD + "/"),
        "api_settings": ApiSettings(
            mail=MailSettings(
                url=smtp_url or smtp.url, sender="Lectr <invites@lectr.test>", timeout_s=5
            )
        ),
        "clock": lambda: clock[0],
    }
    return Mailing(await start_api(**options), smtp, clock, options)


@pytest.fixture
async def m(start_api: StartApi, lectr_settings: Settings, smtp: SmtpServer) -> Mailing:
    return await mailing(start_api, lectr_settings, smtp)


async def test_an_invite_email_reaches_the_smtp_server_and_its_token_works_once(
    m: Mailing, as_member: AsMember, db: asyncpg.Connection
) -> None:
    org = await m.api.make_org()
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    invite, token = await m.invite(org["id"], email, "admin")
    assert (invite["email"], invite["role"], invite["accepted_at"]) == (email, "admin", None)
    assert invite["invited_by"] is None  # an operator is no member
    [mail] = m.smtp.inbox.received
    assert mail.message["To"] == email and mail.message["From"] == "Lectr <invites@lectr.test>"
    assert org["name"] in mail.message["Subject"]
    assert f"{DASHBOARD}/invites/accept#token={token}" in mail.part("html")
    # Only the keyed hash is stored; the token is nowhere in the row.
    row = await db.fetchrow("SELECT * FROM org_invites WHERE id = $1", uuid.UUID(invite["id"]))
    assert row["token_hash"] == hash_key(token, PEPPER)
    assert token not in str(dict(row))
    # The invitee signs in (a member of nothing yet) and accepts.
    user = await as_member(None, None, email=email)
    assert (await user.call("GET", "/api/me")).body["orgs"] == []
    accepted = await user.call("POST", "/api/invites/accept", json={"token": token})
    assert accepted.status == 200, accepted.body
    assert (accepted.body["org_id"], accepted.body["org_name"]) == (org["id"], org["name"])
    assert (accepted.body["member"]["email"], accepted.body["member"]["role"]) == (email, "admin")
    me = (await user.call("GET", "/api/me")).body
    assert me["orgs"] == [{"id": org["id"], "name": org["name"], "role": "admin"}]
    assert (await user.call("GET", f"/api/orgs/{org['id']}/keys")).status == 200
    # Once only: for them and for anyone else.
    for client in (user, await as_member(None, None)):
        again = await client.call("POST", "/api/invites/accept", json={"token": token})
        assert (again.status, again.body["error"]["field"]) == (409, "token"), again.body
    listed = (await m.api.call("GET", f"/api/orgs/{org['id']}/invites")).body["invites"]
    assert listed == []  # accepted invites are no longer pending
    actions = [a for a, _ in await audit_trail(db, org["id"], "invite.%")]
    assert actions == ["invite.create", "invite.accept"]


async def test_an_invite_works_until_it_expires_and_not_after(
    m: Mailing, as_member: AsMember
) -> None:
    org = (await m.api.make_org())["id"]
    # Sent 71 and 73 hours ago: the default lifetime is 72 hours.
    m.clock[0] = time.time() - 71 * 3600
    fresh_email = f"fresh-{uuid.uuid4().hex[:8]}@example.com"
    fresh, fresh_token = await m.invite(org, fresh_email)
    m.clock[0] = time.time() - 73 * 3600
    stale_email = f"stale-{uuid.uuid4().hex[:8]}@example.com"
    stale, stale_token = await m.invite(org, stale_email)
    assert stale["expires_at"] < fresh["expires_at"]

    late = await as_member(None, None, email=stale_email)
    reply = await late.call("POST", "/api/invites/accept", json={"token": stale_token})
    assert (reply.status, reply.body["error"]["field"]) == (404, "token")
    assert "expired" in reply.body["error"]["message"]
    on_time = await as_member(None, None, email=fresh_email)
    reply = await on_time.call("POST", "/api/invites/accept", json={"token": fresh_token})
    assert reply.status == 200, reply.body
    # An expired invite is still listed, so an admin sees it and can invite again.
    listed = (await m.api.call("GET", f"/api/orgs/{org}/invites")).body["invites"]
    assert [i["email"] for i in listed] == [stale_email]


async def test_inviting_again_replaces_the_pending_invite_and_withdrawing_kills_the_token(
    m: Mailing, as_member: AsMember
) -> None:
    org = (await m.api.make_org())["id"]
    email = f"twice-{uuid.uuid4().hex[:8]}@example.com"
    _, first_token = await m.invite(org, email)
    second, second_token = await m.invite(org, email.upper())
    assert second["replaced"] == 1 and first_token != second_token
    listed = (await m.api.call("GET", f"/api/orgs/{org}/invites")).body["invites"]
    assert [i["id"] for i in listed] == [second["id"]]
    user = await as_member(None, None, email=email)
    replaced = await user.call("POST", "/api/invites/accept", json={"token": first_token})
    assert replaced.status == 404
    withdrawn = await m.api.call("DELETE", f"/api/orgs/{org}/invites/{second['id']}")
    assert (withdrawn.status, withdrawn.body["id"]) == (200, second["id"])
    reply = await user.call("POST", "/api/invites/accept", json={"token": second_token})
    assert (reply.status, reply.body["error"]["code"]) == (404, "not_found")
    # Withdrawing again, or another org's invite, is 404.
    assert (await m.api.call("DELETE", f"/api/orgs/{org}/invites/{second['id']}")).status == 404
    other = (await m.api.make_org())["id"]
    theirs, _ = await m.invite(other, email)
    assert (await m.api.call("DELETE", f"/api/orgs/{org}/invites/{theirs['id']}")).status == 404


async def test_an_admin_invites_below_owner_and_is_recorded_as_the_inviter(
    m: Mailing, as_member: AsMember, db: asyncpg.Connection
) -> None:
    org = (await m.api.make_org())["id"]
    # Without an SMTP server, inviting is refused and writes nothing.
    no_mail = await as_member(org, "admin")
    reply = await no_mail.call(
        "POST", f"/api/orgs/{org}/invites", json={"email": "x@example.com", "role": "viewer"}
    )
    assert (reply.status, reply.body["error"]["code"]) == (409, "conflict")
    assert "LECTR_SMTP_URL" in reply.body["error"]["message"]
    count = "SELECT count(*) FROM org_invites WHERE org_id = $1"
    assert await db.fetchval(count, uuid.UUID(org)) == 0

    # An admin of an API that mails: owners are out of reach, others are not.
    admin = await as_member(org, "admin", **m.options)
    m.api = admin
    owner_invite = await admin.call(
        "POST", f"/api/orgs/{org}/invites", json={"email": "o@example.com", "role": "owner"}
    )
    assert (owner_invite.status, owner_invite.body["error"]["field"]) == (403, "role")
    invite, _ = await m.invite(org, f"v-{uuid.uuid4().hex[:8]}@example.com", "viewer")
    assert invite["invited_by"] == await member_id(db, org, admin.email or "")
    # A member already is not invited; a bad address is 400 naming it.
    taken = await m.api.call(
        "POST", f"/api/orgs/{org}/invites", json={"email": (admin.email or "").upper()}
    )
    assert (taken.status, taken.body["error"]["field"]) == (409, "email")
    bad = await m.api.call("POST", f"/api/orgs/{org}/invites", json={"email": "not-an-email"})
    assert (bad.status, bad.body["error"]["field"]) == (400, "email")


async def test_a_mail_server_that_refuses_or_is_down_leaves_no_invite(
    start_api: StartApi, lectr_settings: Settings, smtp: SmtpServer, db: asyncpg.Connection
) -> None:
    for m in (
        await mailing(start_api, lectr_settings, smtp),
        await mailing(start_api, lectr_settings, smtp, f"smtp://127.0.0.1:{free_port()}"),
    ):
        smtp.inbox.refuse = 1
        org = (await m.api.make_org())["id"]
        reply = await m.api.call(
            "POST", f"/api/orgs/{org}/invites", json={"email": "a@example.com"}
        )
        assert (reply.status, reply.body["error"]["code"]) == (503, "email_failed"), reply.body
        assert (
            await db.fetchval("SELECT count(*) FROM org_invites WHERE org_id = $1", uuid.UUID(org))
            == 0
        )
        assert await audit_trail(db, org, "invite.%") == []
        smtp.inbox.refuse = 0
    assert smtp.inbox.received == []


async def test_accepting_needs_a_signed_in_user_who_is_not_a_member_yet(
    m: Mailing, as_member: AsMember, db: asyncpg.Connection
) -> None:
    org = (await m.api.make_org())["id"]
    _, token = await m.invite(org, f"i-{uuid.uuid4().hex[:8]}@example.com")
    operator = await m.api.call("POST", "/api/invites/accept", json={"token": token})
    assert (operator.status, operator.body["error"]["code"]) == (403, "forbidden")
    anonymous = await m.api.call(
        "POST", "/api/invites/accept", json={"token": token}, anonymous=True
    )
    assert anonymous.status == 401
    # A member of the org already: refused, and the token is not spent.
    member = await as_member(org, "viewer")
    reply = await member.call("POST", "/api/invites/accept", json={"token": token})
    assert (reply.status, reply.body["error"]["code"]) == (409, "conflict")
    assert (
        await db.fetchval("SELECT accepted_at FROM org_invites WHERE org_id = $1", uuid.UUID(org))
        is None
    )
    for body in ({}, {"token": ""}, {"token": 5}, {"token": "x", "org": 1}):
        bad = await member.call("POST", "/api/invites/accept", json=body)
        assert bad.status == 400, body
    unknown = await member.call("POST", "/api/invites/accept", json={"token": "lc_inv_nope"})
    assert (unknown.status, unknown.body["error"]["field"]) == (404, "token")


async def test_a_removed_member_loses_the_org_at_their_next_request(
    as_member: AsMember, db: asyncpg.Connection, api: ApiClient
) -> None:
    org = (await api.make_org())["id"]
    admin = await as_member(org, "admin")
    assert (await admin.call("GET", f"/api/orgs/{org}/members")).status == 200
    removed = await api.call(
        "DELETE", f"/api/orgs/{org}/members/{await member_id(db, org, admin.email or '')}"
    )
    assert removed.status == 200
    reply = await admin.call("GET", f"/api/orgs/{org}/members")
    assert (reply.status, reply.body["error"]["code"]) == (404, "not_found")
    assert (await admin.call("GET", "/api/me")).body["orgs"] == []
