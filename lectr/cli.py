"""The ``lectr`` command: migrations, organisations and keys, and every process.

Errors a user can fix (a bad setting, an unreachable database, an unknown org) are
printed as one line, ``lectr: …``, with exit code 2 for bad input and 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence

import aio_pika
import asyncpg
import orjson

from lectr import broker, logs, migrations, processes
from lectr.db import DatabaseUnavailable, connection
from lectr.orgs import IssuedKey, OrgError, OrgSummary, create_org, list_orgs, rotate_key
from lectr.settings import Settings, SettingsError, redact_url
from lectr.supervisor import Supervisor
from schema.control import ControlMessage

log = logging.getLogger("lectr")

BROKER_TIMEOUT_S = 10.0


class CommandError(Exception):
    """A failure to report as one line, with an exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lectr", description="Lectr: a self-hosted gateway for LLM APIs."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("migrate", help="create the database if missing, upgrade the schema")
    commands.add_parser("up", help="migrate, then run and supervise every process")

    org = commands.add_parser("org", help="manage organisations").add_subparsers(
        dest="org_command", required=True, metavar="ACTION"
    )
    create = org.add_parser("create", help="create an organisation and print its first key")
    create.add_argument("name")
    create.add_argument("--json", action="store_true", help="print JSON")
    listing = org.add_parser("list", help="list organisations")
    listing.add_argument("--json", action="store_true", help="print JSON")

    key = commands.add_parser("key", help="manage API keys").add_subparsers(
        dest="key_command", required=True, metavar="ACTION"
    )
    rotate = key.add_parser("rotate", help="issue a new key for ORG and revoke its old ones")
    rotate.add_argument("org", metavar="ORG", help="organisation id or name")
    rotate.add_argument("--json", action="store_true", help="print JSON")

    for name in processes.available():
        commands.add_parser(name, help=f"run the {name} process")
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(environ)
        logs.configure(settings.log_level)
        return _dispatch(args, settings)
    except SettingsError as exc:
        return _fail(str(exc), 2)
    except CommandError as exc:
        return _fail(str(exc), exc.code)
    except DatabaseUnavailable as exc:
        return _fail(str(exc), 1)
    except asyncpg.UndefinedTableError:
        return _fail("the database has no Lectr tables yet; run `lectr migrate` first", 1)


def _fail(message: str, code: int) -> int:
    print(f"lectr: {message}", file=sys.stderr)
    return code


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    handlers: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
        "migrate": _migrate,
        "up": _up,
        "org": _org,
        "key": _key,
    }
    handler = handlers.get(args.command)
    if handler is not None:
        return handler(args, settings)
    return processes.entry_point(args.command)(settings)


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    created = migrations.migrate(settings.database_url)
    where = redact_url(settings.database_url)
    print(f"{'created and migrated' if created else 'migrated'} {where} to the latest schema")
    return 0


def _org(args: argparse.Namespace, settings: Settings) -> int:
    if args.org_command == "create":
        issued = asyncio.run(_create_org(settings, args.name))
        _print_key(issued, args.json, f"Created organisation {issued.org_name}")
        return 0
    orgs = asyncio.run(_list_orgs(settings))
    if args.json:
        rows = [
            {
                "id": str(o.id),
                "name": o.name,
                "status": o.status,
                "active_keys": o.active_keys,
                "created_at": o.created_at.isoformat(),
            }
            for o in orgs
        ]
        print(orjson.dumps(rows).decode())
        return 0
    if not orgs:
        print("no organisations yet: create one with `lectr org create NAME`")
    for o in orgs:
        print(f"{o.id}  {o.status:<8}  keys={o.active_keys}  {o.created_at:%Y-%m-%d}  {o.name}")
    return 0


def _key(args: argparse.Namespace, settings: Settings) -> int:
    issued = asyncio.run(_rotate_key(settings, args.org))
    _print_key(
        issued, args.json, f"New key for {issued.org_name}; revoked {issued.revoked_keys} old"
    )
    return 0


def _print_key(issued: IssuedKey, as_json: bool, headline: str) -> None:
    if as_json:
        print(
            orjson.dumps(
                {
                    "org_id": str(issued.org_id),
                    "name": issued.org_name,
                    "key_id": str(issued.key_id),
                    "key": issued.key,
                    "revoked_keys": issued.revoked_keys,
                }
            ).decode()
        )
        return
    print(headline)
    print(f"  org id: {issued.org_id}")
    print(f"  key id: {issued.key_id}")
    print(f"  key:    {issued.key}")
    print("Store the key now: Lectr keeps only a hash of it and cannot show it again.")


async def _create_org(settings: Settings, name: str) -> IssuedKey:
    return await _issue_key(
        settings, lambda conn: create_org(conn, name, pepper=settings.key_pepper), ("orgs", "keys")
    )


async def _rotate_key(settings: Settings, ref: str) -> IssuedKey:
    return await _issue_key(
        settings, lambda conn: rotate_key(conn, ref, pepper=settings.key_pepper), ("keys",)
    )


async def _issue_key(
    settings: Settings,
    issue: Callable[[asyncpg.Connection], Awaitable[IssuedKey]],
    caches: tuple[str, ...],
) -> IssuedKey:
    """Run ``issue`` in the database, then tell proxies to reload ``caches`` of that org."""
    settings.warn_about_dev_defaults(admin_secret=False)
    async with connection(settings.database_url) as conn:
        try:
            issued = await issue(conn)
        except OrgError as exc:
            raise CommandError(str(exc), 2) from None
    await _notify_proxies(settings, [ControlMessage(cache, issued.org_id) for cache in caches])
    return issued


async def _list_orgs(settings: Settings) -> list[OrgSummary]:
    async with connection(settings.database_url) as conn:
        return await list_orgs(conn)


async def _notify_proxies(settings: Settings, messages: list[ControlMessage]) -> None:
    """Tell running proxies to reload; the change is already committed either way."""
    names = broker.BrokerNames(settings.broker_prefix)
    try:
        amqp = await aio_pika.connect(settings.amqp_url, timeout=BROKER_TIMEOUT_S)
        async with amqp, amqp.channel() as channel:
            for message in messages:
                await broker.publish_control(channel, names, message.encode())
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        print(
            f"lectr: warning: could not notify running proxies through LECTR_AMQP_URL "
            f"({redact_url(settings.amqp_url)}): {exc or type(exc).__name__}; they pick the "
            "change up at their next full cache reload",
            file=sys.stderr,
        )


def _up(args: argparse.Namespace, settings: Settings) -> int:
    settings.warn_about_dev_defaults()
    migrations.migrate(settings.database_url)
    log.info("database %s is at the latest schema", redact_url(settings.database_url))
    asyncio.run(_declare_topology(settings))
    names = processes.available()
    if not names:
        log.info("no Lectr processes are installed yet; nothing more to run")
        return 0
    return asyncio.run(_supervise(names))


async def _declare_topology(settings: Settings) -> None:
    try:
        amqp = await aio_pika.connect(settings.amqp_url, timeout=BROKER_TIMEOUT_S)
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        raise CommandError(
            f"cannot reach the broker at LECTR_AMQP_URL ({redact_url(settings.amqp_url)}): "
            f"{exc or type(exc).__name__}"
        ) from exc
    async with amqp, amqp.channel() as channel:
        try:
            await broker.declare_topology(
                channel,
                broker.BrokerNames(settings.broker_prefix),
                delivery_limit=settings.ingest_delivery_limit,
                replay_max_age=settings.replay_max_age,
            )
        except broker.TopologyError as exc:
            raise CommandError(str(exc)) from exc


async def _supervise(names: list[str]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log.info("running %s; Ctrl-C stops them in reverse order", ", ".join(names))
    await Supervisor(processes.specs(names)).run(stop)
    return 0
