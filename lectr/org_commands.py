"""``lectr org …`` and ``lectr key …``: run one domain function, print, notify proxies."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import orjson

from lectr import orgs
from lectr.db import connection
from lectr.errors import CommandError
from lectr.notify import notify_proxies
from lectr.settings import Settings

T = TypeVar("T")


def add_parsers(commands: argparse._SubParsersAction) -> None:
    org = commands.add_parser("org", help="manage organisations").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create_org = _with_json(
        org.add_parser("create", help="create an organisation and print its first key")
    )
    create_org.add_argument("name")
    _with_json(org.add_parser("list", help="list organisations"))
    for action in ("enable", "disable"):
        org.add_parser(action, help=f"{action} an organisation").add_argument("org", metavar="ORG")

    key = commands.add_parser("key", help="manage API keys").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create = _with_json(key.add_parser("create", help="issue one more key for ORG"))
    create.add_argument("org", metavar="ORG", help="organisation id or name")
    create.add_argument("--name", help="a label for the key")
    rotate = _with_json(key.add_parser("rotate", help="issue a new key, revoke all older ones"))
    rotate.add_argument("org", metavar="ORG", help="organisation id or name")
    listing = _with_json(key.add_parser("list", help="list ORG's keys (never the keys)"))
    listing.add_argument("org", metavar="ORG", help="organisation id or name")
    key.add_parser("revoke", help="revoke one key now").add_argument("key_id", metavar="KEY_ID")


def _with_json(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``lectr org ACTION`` or ``lectr key ACTION``."""
    handlers: dict[tuple[str, str], Callable[[argparse.Namespace, Settings], Awaitable[None]]]
    handlers = {
        ("org", "create"): _org_create,
        ("org", "list"): _org_list,
        ("org", "enable"): _org_status,
        ("org", "disable"): _org_status,
        ("key", "create"): _key_create,
        ("key", "rotate"): _key_rotate,
        ("key", "list"): _key_list,
        ("key", "revoke"): _key_revoke,
    }
    asyncio.run(handlers[(args.command, args.action)](args, settings))
    return 0


async def _in_db(settings: Settings, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run ``work`` on one connection; an :class:`orgs.OrgError` becomes exit code 2."""
    async with connection(settings.database_url) as conn:
        try:
            return await work(conn)
        except orgs.OrgError as exc:
            raise CommandError(str(exc), 2) from None


async def _org_create(args: argparse.Namespace, settings: Settings) -> None:
    await _issue_key(
        args,
        settings,
        lambda conn: orgs.create_org(conn, args.name, pepper=settings.key_pepper),
        ("orgs", "keys"),
        lambda issued: f"Created organisation {issued.org_name}",
    )


async def _org_list(args: argparse.Namespace, settings: Settings) -> None:
    found = await _in_db(settings, orgs.list_orgs)
    if args.json:
        _print_json(found)
        return
    if not found:
        print("no organisations yet: create one with `lectr org create NAME`")
    for o in found:
        print(f"{o.id}  {o.status:<8}  keys={o.active_keys}  {o.created_at:%Y-%m-%d}  {o.name}")


async def _org_status(args: argparse.Namespace, settings: Settings) -> None:
    status = "active" if args.action == "enable" else "disabled"
    org_id = await _in_db(settings, lambda conn: orgs.set_status(conn, args.org, status))
    await notify_proxies(settings, org_id, ("orgs",))
    print(f"organisation {org_id} is {status}")


async def _key_create(args: argparse.Namespace, settings: Settings) -> None:
    await _issue_key(
        args,
        settings,
        lambda conn: orgs.create_key(conn, args.org, pepper=settings.key_pepper, name=args.name),
        ("keys",),
        lambda issued: f"New key for {issued.org_name}; its other keys still work",
    )


async def _key_rotate(args: argparse.Namespace, settings: Settings) -> None:
    await _issue_key(
        args,
        settings,
        lambda conn: orgs.rotate_key(conn, args.org, pepper=settings.key_pepper),
        ("keys",),
        lambda issued: f"New key for {issued.org_name}; revoked {issued.revoked_keys} old",
    )


async def _issue_key(
    args: argparse.Namespace,
    settings: Settings,
    issue: Callable[[asyncpg.Connection], Awaitable[orgs.IssuedKey]],
    caches: tuple[str, ...],
    headline: Callable[[orgs.IssuedKey], str],
) -> None:
    """Issue a key in the database, tell proxies to reload ``caches``, show the key once."""
    settings.warn_about_dev_defaults(admin_secret=False)
    issued = await _in_db(settings, issue)
    await notify_proxies(settings, issued.org_id, caches)
    if args.json:
        _print_json(issued)
        return
    print(headline(issued))
    print(f"  org id: {issued.org_id}")
    print(f"  key id: {issued.key_id}")
    print(f"  key:    {issued.key}")
    print("Store the key now: Lectr keeps only a hash of it and cannot show it again.")


async def _key_list(args: argparse.Namespace, settings: Settings) -> None:
    keys = await _in_db(settings, lambda conn: orgs.list_keys(conn, args.org))
    if args.json:
        _print_json(keys)
        return
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        print(f"{k.id}  {k.display_prefix}…  {k.created_at:%Y-%m-%d}  {state}  {k.name or ''}")


async def _key_revoke(args: argparse.Namespace, settings: Settings) -> None:
    org_id = await _in_db(settings, lambda conn: orgs.revoke_key(conn, args.key_id))
    await notify_proxies(settings, org_id, ("keys",))
    print(f"key {args.key_id} is revoked")


def _print_json(value: object) -> None:
    # orjson writes dataclasses and datetimes (RFC 3339); asyncpg UUIDs need str().
    print(orjson.dumps(value, default=str).decode())
