"""``lectr migrate``, ``lectr up`` and ``lectr PROCESS``: running Lectr itself."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
from collections.abc import Mapping

from lectr import broker, processes
from lectr.errors import CommandError
from lectr.settings import Settings, redact_url
from lectr.supervisor import Supervisor

log = logging.getLogger("lectr")

# How long `lectr up` gives a process to stop before killing it, unless the process
# derives its own deadline from its settings (see processes.stop_deadline_s).
STOP_TIMEOUT_S = 45.0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    commands.add_parser(
        "migrate", help="create the database if missing, upgrade the schema, add partitions"
    )
    commands.add_parser("up", help="migrate, then run and supervise every process")
    # A process parses its own options (`lectr proxy --help`), so none are declared here.
    for name in processes.available():
        commands.add_parser(name, help=f"run the {name} process", add_help=False)
    for name in processes.available_commands():
        commands.add_parser(name, help=f"`lectr {name} --help` for its options", add_help=False)


def migrate(args: argparse.Namespace, settings: Settings) -> int:
    created = _migrate(settings)
    where = redact_url(settings.database_url)
    print(f"{'created and migrated' if created else 'migrated'} {where} to the latest schema")
    return 0


def up(args: argparse.Namespace, settings: Settings) -> int:
    settings.warn_about_dev_defaults()
    _migrate(settings)
    log.info("database %s is at the latest schema", redact_url(settings.database_url))
    asyncio.run(declare_topology(settings))
    names = processes.available()
    if not names:
        log.info("no Lectr processes are installed yet; nothing more to run")
        return 0
    return asyncio.run(_supervise(names))


def _migrate(settings: Settings) -> bool:
    # Alembic and SQLAlchemy are loaded only when migrating: other commands start faster.
    from sqlalchemy.exc import SQLAlchemyError

    from lectr import migrations

    try:
        return migrations.migrate(settings.database_url)
    except SQLAlchemyError as exc:
        # Migrations run in one transaction: a failure leaves the schema as it was.
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise CommandError(f"migration failed, nothing was changed: {reason}") from exc


def run_process(args: argparse.Namespace, settings: Settings) -> int:
    return processes.entry_point(args.command)(settings, args.extra)


async def declare_topology(settings: Settings) -> None:
    """Declare the broker topology, or fail with a one-line reason."""
    try:
        amqp = await broker.connect(settings.amqp_url)
    except broker.BrokerUnavailable as exc:
        raise CommandError(str(exc)) from exc
    async with amqp, amqp.channel() as channel:
        try:
            await broker.declare_topology(
                channel,
                broker.BrokerNames(settings.broker_prefix),
                replay_max_age=settings.replay_max_age,
            )
        except broker.TopologyError as exc:
            raise CommandError(str(exc)) from exc


async def _supervise(names: list[str]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGHUP too: children are in their own sessions, so a closed terminal must stop them here.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    log.info("running %s; Ctrl-C stops them in reverse order", ", ".join(names))
    specs = [
        dataclasses.replace(spec, stop_timeout_s=stop_deadline_s(spec.name, os.environ))
        for spec in processes.specs(names)
    ]
    await Supervisor(specs, stop_timeout_s=STOP_TIMEOUT_S).run(stop)
    return 0


def stop_deadline_s(name: str, environ: Mapping[str, str]) -> float:
    """How long process ``name`` gets to stop after SIGTERM, from its settings."""
    return processes.stop_deadline_s(name, environ) or STOP_TIMEOUT_S
