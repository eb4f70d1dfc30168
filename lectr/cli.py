"""The ``lectr`` command: migrations, organisations, keys and members, and every process.

Errors a user can fix (a bad setting, an unreachable database, an unknown org) are
printed as one line, ``lectr: …``, with exit code 2 for bad input and 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata

import asyncpg

from lectr import logs, member_commands, org_commands, stack_commands
from lectr.db import DatabaseUnavailable
from lectr.demo import command as demo_command
from lectr.errors import CommandError
from lectr.settings import Settings, SettingsError

Handler = Callable[[argparse.Namespace, Settings], int]

HANDLERS: dict[str, Handler] = {
    "migrate": stack_commands.migrate,
    "up": stack_commands.up,
    "org": org_commands.run,
    "key": org_commands.run,
    "member": member_commands.run,
    "demo": demo_command.run,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lectr", description="Lectr: a self-hosted gateway for LLM APIs."
    )
    parser.add_argument("--version", action="version", version=f"lectr {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stack_commands.add_parsers(commands)
    org_commands.add_parsers(commands)
    member_commands.add_parsers(commands)
    demo_command.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.command in HANDLERS and extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        settings = Settings.from_env(environ)
        logs.configure(settings.log_level)
        handler = HANDLERS.get(args.command, stack_commands.run_process)
        return handler(args, settings)
    except SettingsError as exc:
        return _fail(str(exc), 2)
    except CommandError as exc:
        return _fail(str(exc), exc.code)
    except DatabaseUnavailable as exc:
        return _fail(str(exc), 1)
    except asyncpg.InvalidCatalogNameError:
        return _fail(
            "the database named in LECTR_DATABASE_URL does not exist yet; "
            "run `lectr migrate` first",
            1,
        )
    except asyncpg.UndefinedTableError:
        return _fail("the database has no Lectr tables yet; run `lectr migrate` first", 1)
    except asyncpg.PostgresError as exc:
        return _fail(f"the database refused: {exc}", 1)


def _version() -> str:
    try:
        return metadata.version("lectr")
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown"


def _fail(message: str, code: int) -> int:
    print(f"lectr: {message}", file=sys.stderr)
    return code
