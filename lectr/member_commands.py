"""``lectr member …``: who may open an organisation in the dashboard, and as what.

An operator's way in for a single-team install or an org's first owner: ``lectr member
add acme alice@example.com --role owner``. The rules are :mod:`lectr.members`, the ones
the management API applies; the command acts as an owner.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

import asyncpg
import orjson

from lectr import members, orgs
from lectr.db import connection
from lectr.errors import CommandError
from lectr.settings import Settings
from schema.constants import MEMBER_ROLES


def add_parsers(commands: argparse._SubParsersAction) -> None:
    member = commands.add_parser("member", help="manage who may open an org").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    add = member.add_parser("add", help="make EMAIL a member of ORG (they sign in with it)")
    add.add_argument("org", metavar="ORG", help="organisation id or name")
    add.add_argument("email", metavar="EMAIL")
    add.add_argument("--role", choices=MEMBER_ROLES, default="member")
    listing = member.add_parser("list", help="list ORG's members")
    listing.add_argument("org", metavar="ORG", help="organisation id or name")
    listing.add_argument("--json", action="store_true", help="print JSON")
    role = member.add_parser("role", help="give a member another role")
    role.add_argument("org", metavar="ORG", help="organisation id or name")
    role.add_argument("email", metavar="EMAIL")
    role.add_argument("role", choices=MEMBER_ROLES)
    remove = member.add_parser("remove", help="remove a member from ORG")
    remove.add_argument("org", metavar="ORG", help="organisation id or name")
    remove.add_argument("email", metavar="EMAIL")


def run(args: argparse.Namespace, settings: Settings) -> int:
    asyncio.run(_run(args, settings))
    return 0


async def _run(args: argparse.Namespace, settings: Settings) -> None:
    async with connection(settings.database_url) as conn:
        try:
            org = await orgs.find_org(conn, args.org)
            await _ACTIONS[args.action](conn, args, org)
        except (orgs.OrgError, members.MemberError) as exc:
            raise CommandError(str(exc), 2) from None


async def _add(conn: asyncpg.Connection, args: argparse.Namespace, org: asyncpg.Record) -> None:
    member = await members.add_member(conn, org["id"], args.email, args.role)
    print(f"{member.email} is now {member.role} of {org['name']} (member id {member.id})")


async def _list(conn: asyncpg.Connection, args: argparse.Namespace, org: asyncpg.Record) -> None:
    found = await members.list_members(conn, org["id"])
    if args.json:
        print(orjson.dumps(found, default=str).decode())
        return
    if not found:
        print(f"{org['name']} has no members yet: add one with `lectr member add`")
    for m in found:
        signed_in = "signed in" if m.oidc_subject else "not signed in yet"
        print(f"{m.id}  {m.role:<6}  {m.email}  ({signed_in})")


async def _member_id(conn: asyncpg.Connection, org: asyncpg.Record, email: str) -> uuid.UUID:
    member = await members.find_by_email(conn, org["id"], email)
    if member is None:
        raise members.MemberError("not_found", f"{email} is not a member of {org['name']}")
    return member.id


async def _role(conn: asyncpg.Connection, args: argparse.Namespace, org: asyncpg.Record) -> None:
    member_id = await _member_id(conn, org, args.email)
    before, after = await members.change_role(conn, org["id"], member_id, args.role)
    print(f"{after.email} is now {after.role} of {org['name']} (was {before.role})")


async def _remove(conn: asyncpg.Connection, args: argparse.Namespace, org: asyncpg.Record) -> None:
    member_id = await _member_id(conn, org, args.email)
    removed = await members.remove_member(conn, org["id"], member_id)
    print(f"{removed.email} ({removed.role}) is no longer a member of {org['name']}")


_ACTIONS = {"add": _add, "list": _list, "role": _role, "remove": _remove}
