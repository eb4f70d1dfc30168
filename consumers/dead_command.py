"""``lectr dead list | retry | purge``: what is in the dead-letter queue, and why; store it
again; or drop it. See :mod:`consumers.dead` (what a dead letter is) and
:mod:`consumers.dead_queue` (how the queue is walked without losing or reordering it).

``list [--json] [--limit N]`` prints one line per dead event (event id, org, when it
was made, when it was dead-lettered, why); never text. ``retry (--all | ID …)``
re-publishes the chosen events to the ingest route, where consumers store them
(idempotently), and removes them from the queue. ``purge (--all | ID …)`` removes them.
An ID is an event id, or the key ``list`` shows for an entry without events.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
from aio_pika.abc import AbstractChannel, AbstractConnection

from consumers.clock import SystemClock
from consumers.dead import DeadEntry, DeadLetters
from consumers.dead_queue import Action, DeadQueue, WalkSummary, keep_all, select
from consumers.settings import ConsumerSettings
from consumers.step import DeadEvent
from lectr import broker
from lectr.errors import CommandError
from lectr.settings import Settings
from schema.events import RequestEvent

DEFAULT_LIMIT = 100


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise CommandError(f"dead: {message}", 2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lectr dead",
        description="Show, re-drive or drop what is in the dead-letter queue (never text).",
    )
    commands = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = commands.add_parser("list", help="what is there and why")
    listing.add_argument("--json", action="store_true", help="one JSON array, no summary")
    listing.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, help=f"rows shown (default {DEFAULT_LIMIT})"
    )
    helps = {
        "retry": "re-publish the chosen dead events to ingest, for consumers to store",
        "purge": "drop the chosen dead letters",
    }
    for name, what in helps.items():
        sub = commands.add_parser(name, help=what)
        chosen = sub.add_mutually_exclusive_group(required=True)
        chosen.add_argument("--all", action="store_true", help="every dead letter")
        chosen.add_argument("ids", nargs="*", default=[], metavar="ID", help="event ids")
    return parser


def run(settings: Settings, argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.action == "list" and args.limit < 0:
        raise CommandError("dead: --limit must be 0 or more", 2)
    return asyncio.run(_run(settings, args))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        connection = await broker.connect(settings.amqp_url)
    except broker.BrokerUnavailable as exc:
        raise CommandError(str(exc)) from exc
    async with connection:
        queue = await open_dead_queue(connection, settings)
        if args.action == "list":
            summary = await queue.walk(keep_all)
            print_list(summary.entries, as_json=args.json, limit=args.limit)
            return 0
        keys = None if args.all else set(args.ids)
        action = Action.RETRY if args.action == "retry" else Action.DROP
        summary = await queue.walk(select(keys, action))
        return print_outcome(args.action, summary, keys)


async def open_dead_queue(connection: AbstractConnection, settings: Settings) -> DeadQueue:
    """``.dead`` on a new channel, the topology declared (an ingest queue of the old kind
    is accepted: its dead letters are what may need sanitising)."""
    names = broker.BrokerNames(settings.broker_prefix)
    channel: AbstractChannel | None = None
    for legacy in (False, True):
        channel = await connection.channel()
        try:
            topology = await broker.declare_topology(
                channel, names, replay_max_age=settings.replay_max_age, legacy_ingest=legacy
            )
        except broker.LegacyIngestQueue:
            continue
        except broker.TopologyError as exc:
            raise CommandError(str(exc)) from exc
        dead = DeadLetters(
            channel.default_exchange,
            names.dead,
            SystemClock(),
            retention_s=ConsumerSettings.from_env().dead_retention_s,
            instance=f"lectr-dead:{socket.gethostname()}:{os.getpid()}",
        )
        return DeadQueue(channel, topology, dead)
    raise CommandError(f"cannot declare {names.ingest}")  # not reached: legacy is accepted


# -- output -------------------------------------------------------------------------------


def rows(entries: list[DeadEntry]) -> Iterator[dict[str, Any]]:
    """One row per dead event (or per entry without events), never with text."""
    for entry in entries:
        kind = "legacy" if entry.legacy else "undecodable" if entry.undecodable else "event"
        base = {
            "kind": kind,
            "key": entry.key,
            "dead_at": _iso(entry.dead_at),
            "reason": entry.reason,
            "holds_text": entry.holds_text,
        }
        if not entry.events and not entry.invalid:
            yield {**base, "id": None, "org_id": None, "created_at": None,
                   "bytes": entry.body_bytes}  # fmt: skip
        for event in entry.events:
            yield {**base, **_event_row(event)}
        for item in entry.invalid:
            yield {**base, **_invalid_row(item)}


def _event_row(event: RequestEvent) -> dict[str, Any]:
    return {"id": str(event.id), "org_id": str(event.org_id),
            "created_at": _iso(event.created_at)}  # fmt: skip


def _invalid_row(item: DeadEvent) -> dict[str, Any]:
    record = item.record if isinstance(item.record, dict) else {}
    return {
        "id": str(record.get("id", "-"))[:40],
        "org_id": str(record.get("org_id", "-"))[:40],
        "created_at": str(record.get("created_at", "-"))[:40],
        "reason": item.reason,
    }


def print_list(entries: list[DeadEntry], *, as_json: bool, limit: int) -> None:
    listed = list(rows(entries))
    shown = listed[:limit]
    if as_json:
        print(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
        return
    for row in shown:
        print(_line(row))
    print(_summary(entries, len(listed), len(shown)))


def _line(row: dict[str, Any]) -> str:
    if row["id"] is None:
        what = f"{row['key']}  (no events kept; {row.get('bytes', 0)} bytes dropped)"
    else:
        what = f"{row['id']}  org {row['org_id']}  made {row['created_at']}"
    note = ""
    if row["kind"] == "legacy":
        note = "  [raw message from before sanitised dead letters"
        note += ", holds text, not shown]" if row["holds_text"] else "]"
    return f"{what}  dead {row['dead_at'] or '-'}  {row['reason']}{note}"


def _summary(entries: list[DeadEntry], total: int, shown: int) -> str:
    legacy = sum(e.legacy for e in entries)
    text = f"lectr dead: {len(entries)} messages in the dead-letter queue, {total} rows"
    if shown < total:
        text += f" (first {shown} shown; --limit N for more)"
    if legacy:
        text += (
            f"; {legacy} raw messages from before sanitised dead letters may hold text: "
            "`lectr dead retry --all` stores their events and sanitises the rest, "
            "`lectr dead purge --all` drops them"
        )
    return text


def print_outcome(action: str, summary: WalkSummary, keys: set[str] | None) -> int:
    missing = set() if keys is None else keys - set().union(*(e.keys for e in summary.entries))
    if action == "retry":
        print(
            f"lectr dead: {summary.retried_events} events re-published to "
            f"{broker.INGEST_EVENTS_KEY} for the consumers to store"
        )
        for key, why in summary.kept:
            print(f"lectr dead: kept {key}: {why}")
    else:
        print(f"lectr dead: purged {summary.dropped} dead-letter messages")
    if summary.expired:
        print(f"lectr dead: {summary.expired} expired dead letters dropped on the way")
    if missing:
        print(f"lectr dead: not found: {', '.join(sorted(missing))}")
        return 1
    return 0


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
