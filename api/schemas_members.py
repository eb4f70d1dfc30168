"""Bodies and answers of an org's members and invites, and of accepting an invite."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from api.schemas import RequestModel, ResponseModel
from api.schemas_settings import Email

Role = Literal["owner", "admin", "member", "viewer"]


class Member(ResponseModel):
    id: uuid.UUID
    email: str
    role: Role
    oidc_subject: str | None = Field(description="set once the member has signed in")
    created_at: datetime


class MemberList(ResponseModel):
    members: list[Member]


class MemberPatch(RequestModel):
    role: Role = Field(description="only an owner makes, changes or removes an owner")


class InviteCreate(RequestModel):
    email: Email
    role: Role = "member"


class Invite(ResponseModel):
    id: uuid.UUID
    email: str
    role: Role
    invited_by: uuid.UUID | None = Field(description="the inviting member; null for operators")
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None


class InviteSent(Invite):
    replaced: int = Field(description="pending invites of this email it replaced")


class InviteList(ResponseModel):
    invites: list[Invite] = Field(description="not yet accepted, expired ones included")


class InviteAccept(RequestModel):
    token: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="the token from the invite email"
    )


class InviteAccepted(ResponseModel):
    org_id: uuid.UUID
    org_name: str
    member: Member
