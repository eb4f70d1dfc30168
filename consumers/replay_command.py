"""``lectr replay --since T [--until T] [--org ID] [--reprice]``: re-apply stored events
from the replay stream, to rebuild a database, back-fill after an incident, or re-price
after a price change. Prints progress and a summary; see :mod:`consumers.replay`.

Times are ISO 8601 (``2026-11-27``, ``2026-11-27T09:30:00+01:00``; no offset means UTC)
or an age: ``90m``, ``6h``, ``2d`` ago.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta

from consumers.clock import SystemClock
from consumers.replay import ReplayOptions, ReplaySummary, replay
from lectr import broker
from lectr.db import create_pool
from lectr.errors import CommandError
from lectr.settings import Settings

_AGE_RE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(value: str, now: datetime) -> datetime:
    """An ISO 8601 time (UTC when it has no offset) or an age such as ``6h``."""
    age = _AGE_RE.match(value.strip())
    if age:
        return now - timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"expected an ISO 8601 time (2026-11-27T09:30:00Z) or an age (90m, 6h, 2d), "
            f"got {value!r}"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise CommandError(f"replay: {message}", 2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lectr replay",
        description="Re-apply stored events from the replay stream (idempotent).",
    )
    parser.add_argument("--since", required=True, help="events made at or after this time")
    parser.add_argument("--until", help="events made before this time (default: no limit)")
    parser.add_argument("--org", help="only this org's events (its id)")
    parser.add_argument(
        "--reprice",
        action="store_true",
        help="compute each event's cost again from the current price table",
    )
    return parser


def options_from(argv: list[str], now: datetime) -> ReplayOptions:
    """The options ``argv`` asks for; raises :class:`CommandError` (code 2) if bad."""
    args = _parser().parse_args(argv)
    try:
        since = parse_time(args.since, now)
        until = parse_time(args.until, now) if args.until else None
    except ValueError as exc:
        raise CommandError(f"replay: {exc}", 2) from None
    if until is not None and until <= since:
        raise CommandError("replay: --until must be later than --since", 2)
    try:
        org_id = uuid.UUID(args.org) if args.org else None
    except ValueError:
        raise CommandError(
            f"replay: --org must be an org id (a UUID), got {args.org!r}", 2
        ) from None
    return ReplayOptions(since=since, until=until, org_id=org_id, reprice=args.reprice)


def run(settings: Settings, argv: list[str]) -> int:
    clock = SystemClock()
    options = options_from(argv, clock.now())
    summary = asyncio.run(_replay(settings, options, clock))
    print(f"replay done: {summary.line()}")
    return 0


def _progress(summary: ReplaySummary) -> None:
    print(f"replay: {summary.line()}", flush=True)


async def _replay(settings: Settings, options: ReplayOptions, clock: SystemClock) -> ReplaySummary:
    window = f"from {options.since.isoformat()}"
    if options.until:
        window += f" until {options.until.isoformat()}"
    print(f"replay: reading the replay stream {window}", flush=True)
    pool = await create_pool(settings.database_url, max_size=2)
    try:
        try:
            connection = await broker.connect(settings.amqp_url)
        except broker.BrokerUnavailable as exc:
            raise CommandError(str(exc)) from exc
        async with connection, connection.channel() as channel:
            names = broker.BrokerNames(settings.broker_prefix)
            try:
                await broker.declare_topology(
                    channel,
                    names,
                    replay_max_age=settings.replay_max_age,
                )
            except broker.TopologyError as exc:
                raise CommandError(str(exc)) from exc
            return await replay(pool, channel, names, options, clock=clock, progress=_progress)
    finally:
        await pool.close()
