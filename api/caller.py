"""Who is calling: an operator (the admin secret, or a session cookie signed in with it)
or a dashboard user (an OIDC token).

The auth middleware (``api.auth``) puts a :class:`Caller` on every request that is not
public, as ``request["caller"]``; handlers ask :mod:`api.access` what it may do in an org.
Operators act as an owner of every org.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Membership:
    member_id: uuid.UUID
    role: str


@dataclass(frozen=True)
class Caller:
    """``operator``: signed in with the admin secret. Otherwise a user known by the
    token's ``subject`` (and ``email`` when known), member of the orgs in
    ``memberships`` (org id -> membership), loaded when the request was authenticated.
    ``session``: authenticated by the browser session cookie (:mod:`api.session`), not
    by a bearer token."""

    operator: bool
    subject: str | None = None
    email: str | None = None
    memberships: dict[uuid.UUID, Membership] = field(default_factory=dict)
    session: bool = False

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        if self.operator:
            return "operator"
        return f"user:{self.email or self.subject}"
