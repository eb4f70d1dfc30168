"""An org's members and invites, and accepting an invite.

The rules are :mod:`lectr.members` and :mod:`lectr.invites`, which ``lectr member``
uses too: admins manage members and invites, only an owner makes, changes or removes
an owner, and an org with owners keeps at least one. Each change and its audit row
share one transaction; a rule they break (:class:`lectr.members.MemberError`) becomes
its error answer in the error middleware. Proxies cache nothing about members, so
nothing is published.

An invite is committed only once its email was handed to the SMTP server: the email is
sent inside the invite's transaction, so a mail server that refuses or cannot be
reached leaves no invite behind (503, ``email_failed``), and without
``LECTR_SMTP_URL`` nobody can be invited (409: the token would reach no one).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import timedelta

from aiohttp import web

from api import audit, invite_email
from api.body import parse_body
from api.caller import Caller
from api.errors import ApiError
from api.routes_table import (
    API_SETTINGS,
    POOL,
    SETTINGS,
    Route,
    caller,
    now,
    path_uuid,
    reply,
)
from api.schemas_members import (
    Invite,
    InviteAccept,
    InviteAccepted,
    InviteCreate,
    InviteList,
    InviteSent,
    Member,
    MemberList,
    MemberPatch,
)
from lectr import invites, members
from lectr.mail import SEND_ERRORS
from lectr.settings import redact_url

log = logging.getLogger(__name__)

_ORG = "/api/orgs/{org}"


def _acting_role(who: Caller, org_id: uuid.UUID) -> str:
    """The caller's role in the org (the route's guard has checked the membership)."""
    return "owner" if who.operator else who.memberships[org_id].role


def _member(member: members.Member) -> Member:
    return Member(**dataclasses.asdict(member))


def _invite(invite: invites.Invite) -> Invite:
    return Invite(**dataclasses.asdict(invite))


async def list_members(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        found = await members.list_members(conn, path_uuid(request, "org"))
    return reply(MemberList(members=[_member(m) for m in found]))


async def patch_member(request: web.Request) -> web.Response:
    org_id, member_id = path_uuid(request, "org"), path_uuid(request, "id")
    body = await parse_body(request, MemberPatch)
    who = caller(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        before, after = await members.change_role(
            conn, org_id, member_id, body.role, acting_role=_acting_role(who, org_id)
        )
        if before != after:
            role = {"old": before.role, "new": after.role}
            await audit.record(conn, who, org_id=org_id, action="member.update",
                               object_type="org_member", object_id=member_id,
                               changes={"email": after.email, "role": role})  # fmt: skip
    return reply(_member(after))


async def delete_member(request: web.Request) -> web.Response:
    org_id, member_id = path_uuid(request, "org"), path_uuid(request, "id")
    who = caller(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        removed = await members.remove_member(
            conn, org_id, member_id, acting_role=_acting_role(who, org_id)
        )
        await audit.record(conn, who, org_id=org_id, action="member.remove",
                           object_type="org_member", object_id=member_id,
                           changes={"email": removed.email, "role": removed.role})  # fmt: skip
    return reply(_member(removed))


async def list_invites(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        found = await invites.list_invites(conn, path_uuid(request, "org"))
    return reply(InviteList(invites=[_invite(i) for i in found]))


async def create_invite(request: web.Request) -> web.Response:
    org_id = path_uuid(request, "org")
    body = await parse_body(request, InviteCreate)
    api_settings, settings, who = request.app[API_SETTINGS], request.app[SETTINGS], caller(request)
    if api_settings.mail.url is None:
        raise ApiError("conflict", "invites go out by email, and LECTR_SMTP_URL is not set")
    membership = who.memberships.get(org_id)
    sent_at = now(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        invite, token, replaced = await invites.create_invite(
            conn, org_id, body.email, body.role,
            pepper=settings.key_pepper, ttl=timedelta(hours=api_settings.invite_ttl_h),
            now=sent_at, acting_role=_acting_role(who, org_id),
            invited_by=None if membership is None else membership.member_id,
        )  # fmt: skip
        await audit.record(conn, who, org_id=org_id, action="invite.create",
                           object_type="org_invite", object_id=invite.id,
                           changes={"email": invite.email, "role": invite.role,
                                    "expires_at": invite.expires_at,
                                    "replaced": [str(r.id) for r in replaced]})  # fmt: skip
        org_name = await conn.fetchval("SELECT name FROM organizations WHERE id = $1", org_id)
        await _send(request, invite, token, org_name)
    return reply(InviteSent(**dataclasses.asdict(invite), replaced=len(replaced)), status=201)


async def _send(request: web.Request, invite: invites.Invite, token: str, org_name: str) -> None:
    """Hand the invite email to the SMTP server, or raise (rolling the invite back)."""
    mail = request.app[API_SETTINGS].mail
    assert mail.url is not None
    url = invite_email.accept_url(request.app[SETTINGS].dashboard_url, token)
    try:
        msg = invite_email.message(to=invite.email, org_name=org_name, role=invite.role,
                                   url=url, expires_at=invite.expires_at, sender=mail.sender,
                                   now=now(request))  # fmt: skip
        await invite_email.send(mail, msg)
    except SEND_ERRORS as exc:
        log.warning("invite email to the SMTP server at %s failed: %s: %s",
                    redact_url(mail.url), type(exc).__name__, exc)  # fmt: skip
        raise ApiError(
            "email_failed", "the invite email could not be sent, so no invite was made; try again"
        ) from None


async def delete_invite(request: web.Request) -> web.Response:
    org_id, invite_id = path_uuid(request, "org"), path_uuid(request, "id")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        deleted = await invites.delete_invite(conn, org_id, invite_id)
        if deleted is None:
            raise ApiError("not_found", "no such invite")
        await audit.record(conn, caller(request), org_id=org_id, action="invite.delete",
                           object_type="org_invite", object_id=invite_id,
                           changes={"email": deleted.email, "role": deleted.role})  # fmt: skip
    return reply(_invite(deleted))


async def accept_invite(request: web.Request) -> web.Response:
    who = caller(request)
    body = await parse_body(request, InviteAccept)
    if who.operator or who.subject is None:
        raise ApiError("forbidden", "sign in as the invited user to accept an invite")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        accepted = await invites.accept_invite(
            conn, body.token, pepper=request.app[SETTINGS].key_pepper, now=now(request),
            oidc_subject=who.subject, email=who.email,
        )  # fmt: skip
        member = accepted.member
        await audit.record(conn, who, org_id=accepted.org_id, action="invite.accept",
                           object_type="org_invite", object_id=accepted.invite.id,
                           changes={"member_id": str(member.id), "email": member.email,
                                    "role": member.role})  # fmt: skip
    return reply(
        InviteAccepted(org_id=accepted.org_id, org_name=accepted.org_name, member=_member(member))
    )


ROUTES_MEMBERS = [
    Route("GET", f"{_ORG}/members", list_members, "The org's members, owners first", "viewer",
          response_model=MemberList),
    Route("PATCH", f"{_ORG}/members/{{id}}", patch_member,
          "Change a member's role (only an owner makes or changes an owner)", "admin",
          request_model=MemberPatch, response_model=Member),
    Route("DELETE", f"{_ORG}/members/{{id}}", delete_member,
          "Remove a member (only an owner removes an owner; the last owner stays)", "admin",
          response_model=Member, errors=(409,)),
    Route("GET", f"{_ORG}/invites", list_invites, "The org's invites not yet accepted",
          "admin", response_model=InviteList),
    Route("POST", f"{_ORG}/invites", create_invite,
          "Invite an email: a single-use token by email, valid LECTR_INVITE_TTL_H hours",
          "admin", request_model=InviteCreate, response_model=InviteSent, status=201),
    Route("DELETE", f"{_ORG}/invites/{{id}}", delete_invite,
          "Withdraw an invite (its token stops working)", "admin", response_model=Invite),
    Route("POST", "/api/invites/accept", accept_invite,
          "Accept an invite: the signed-in user becomes a member with the invited role",
          "signed_in", request_model=InviteAccept, response_model=InviteAccepted,
          errors=(403, 404)),
]  # fmt: skip
