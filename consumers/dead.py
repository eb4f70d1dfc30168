"""Dead letters: sanitised events that could not be stored, one per message, with why.

The consumer is the only one that puts anything in ``<p>.dead`` (the ingest queue has no
broker-side dead-letter path: a raw ingest message may carry prompt text and holds
events of many orgs). Each dead letter is one event, without its ``text`` (a count the
text was still needed for is marked ``token_source = "uncounted"``), with its text
fields made storable (:func:`consumers.validate.storable`), published with a publisher
confirm before the message it came from is acked. Its headers say why
(:data:`REASON`), when (:data:`DEAD_AT`), where it came from (the original message id
and delivery count) and until when RabbitMQ keeps it: each dead letter expires after
``LECTR_DEAD_RETENTION`` (a per-message TTL, which quorum queues honour since 3.10).

A message that is not an event batch at all cannot be split into events and may hold
text: it is never kept; a marker (:data:`UNDECODABLE_TYPE`, a batch of no events)
records that it was dropped, with its size and reason, so ``lectr dead list`` shows it.
Every message in ``.dead`` is therefore a batch in the wire format, without text.

:func:`read_entry` reads any message found in ``.dead``, including raw ingest messages
the broker dead-lettered before this existed (:attr:`DeadEntry.legacy`: they may hold
text, which is never shown; ``lectr dead retry`` or ``purge`` clears them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage
from pamqp.commands import Basic

from consumers.clock import Clock
from consumers.step import DeadEvent, Delivery
from consumers.validate import clean_json, clean_text, storable
from schema.events import (
    CONTENT_TYPE,
    EVENTS_TYPE,
    UNCOUNTED,
    WIRE_VERSION,
    InvalidEvent,
    RequestEvent,
    decode_events,
    encode_events,
)

log = logging.getLogger(__name__)

UNDECODABLE_TYPE = "lectr.dead.undecodable.v1"
REASON = "x-lectr-reason"
DEAD_AT = "x-lectr-dead-at"
EXPIRES_AT_MS = "x-lectr-expires-at-ms"
ORIGIN_MESSAGE_ID = "x-lectr-origin-message-id"
ORIGIN_DELIVERY_COUNT = "x-lectr-origin-delivery-count"
ORIGIN_BYTES = "x-lectr-origin-bytes"
CONSUMER = "x-lectr-consumer"
MAX_REASON_CHARS = 500
# Fields of a raw event kept in a dead letter when it did not decode: the metadata only.
RAW_FIELDS = frozenset(f.name for f in dataclasses.fields(RequestEvent)) - {"text"}


def delivery_count(delivery: Delivery) -> int:
    """How many earlier deliveries of this message ended without an ack (the quorum
    queue's ``x-delivery-count``; absent on a first delivery)."""
    value = (delivery.headers or {}).get("x-delivery-count")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def without_text(event: RequestEvent) -> RequestEvent:
    """``event`` sanitised; its tokens marked uncounted when the text was still needed."""
    if event.text is None:
        return event
    if event.input_tokens is None or event.output_tokens is None:
        return dataclasses.replace(event, text=None, token_source=UNCOUNTED)
    return event.sanitised()


def dead_body(record: RequestEvent | Mapping[str, Any]) -> bytes:
    """The body of one dead letter: a one-event batch, with nothing but metadata."""
    if isinstance(record, RequestEvent):
        return encode_events([storable(without_text(record))])
    fields = {k: clean_json(v) for k, v in record.items() if k in RAW_FIELDS}
    return orjson.dumps({"v": WIRE_VERSION, "events": [fields]})


def record_id(record: RequestEvent | Mapping[str, Any]) -> str:
    """The event id to name a dead letter by (a new one when the record has none)."""
    if isinstance(record, RequestEvent):
        return str(record.id)
    raw = record.get("id")
    try:
        return str(uuid.UUID(raw)) if isinstance(raw, str) else str(uuid.uuid4())
    except ValueError:
        return str(uuid.uuid4())


class DeadLetters:
    """Publishes dead letters to ``queue`` through ``exchange`` (the default exchange of
    a channel with publisher confirms); each ``publish`` returns once confirmed."""

    def __init__(
        self,
        exchange: AbstractExchange,
        queue: str,
        clock: Clock,
        *,
        retention_s: float,
        instance: str,
    ) -> None:
        self.exchange = exchange
        self.queue = queue
        self.clock = clock
        self.retention_s = retention_s
        self.instance = instance

    async def publish_events(self, dead: Sequence[DeadEvent], origin: Delivery) -> None:
        """Dead-letter each of ``dead`` (sanitised), as a message of its own."""
        for item in dead:
            headers = self._headers(item.reason, origin)
            message = self._message(dead_body(item.record), headers, record_id(item.record))
            await self._publish(message)

    async def publish_undecodable(self, origin: Delivery, reason: str) -> None:
        """Record that ``origin`` could not be decoded; its body is not kept."""
        headers = {**self._headers(reason, origin), ORIGIN_BYTES: len(origin.body)}
        body = encode_events([])  # still a batch, of no events: its body is not kept
        message = self._message(body, headers, str(uuid.uuid4()), type_=UNDECODABLE_TYPE)
        await self._publish(message)

    def _headers(self, reason: str, origin: Delivery) -> dict[str, Any]:
        now = self.clock.now()
        expires_at = now + timedelta(seconds=self.retention_s)
        return {
            # Header text must be UTF-8: a reason quoting a broken value is made so.
            REASON: clean_text(reason[:MAX_REASON_CHARS]),
            DEAD_AT: now.isoformat(),
            EXPIRES_AT_MS: int(expires_at.timestamp() * 1000),
            ORIGIN_MESSAGE_ID: clean_text(origin.message_id or ""),
            ORIGIN_DELIVERY_COUNT: delivery_count(origin) + 1,
            CONSUMER: self.instance,
        }

    def _message(
        self, body: bytes, headers: dict[str, Any], message_id: str, type_: str = EVENTS_TYPE
    ) -> aio_pika.Message:
        return aio_pika.Message(
            body,
            headers=headers,
            content_type=CONTENT_TYPE,
            type=type_,
            message_id=message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            timestamp=self.clock.now(),
            expiration=self.retention_s,
        )

    async def _publish(self, message: aio_pika.Message) -> None:
        await publish_confirmed(self.exchange, message, self.queue)


class NotRouted(RuntimeError):
    """The broker confirmed a publish but routed it nowhere (its queue is missing)."""


async def publish_confirmed(
    exchange: AbstractExchange, message: aio_pika.Message, routing_key: str
) -> None:
    """Publish and wait for the broker's confirm; raise :class:`NotRouted` when the
    message reached no queue (so the caller does not ack what it came from)."""
    result = await exchange.publish(message, routing_key=routing_key, mandatory=True)
    if result is not None and not isinstance(result, Basic.Ack):
        raise NotRouted(f"the broker routed a message for {routing_key!r} to no queue")


# -- reading what is in .dead (lectr dead) --------------------------------------------


@dataclass
class DeadEntry:
    """One message in ``.dead``, as ``lectr dead`` shows and handles it.

    ``key`` names it on the command line: its event id, or for a message without one
    event, its message id (or a hash of its body). ``events`` are the events it holds
    (one for a dead letter, many for a legacy raw message), always without text.
    """

    key: str
    reason: str
    dead_at: datetime | None
    events: list[RequestEvent]
    # A legacy message's events that do not decode: their metadata, with why.
    invalid: list[DeadEvent] = field(default_factory=list)
    legacy: bool = False
    undecodable: bool = False
    holds_text: bool = False
    body_bytes: int = 0

    @property
    def keys(self) -> set[str]:
        invalid = (d.record.get("id") for d in self.invalid if isinstance(d.record, dict))
        return {self.key, *(str(e.id) for e in self.events), *map(str, invalid)}


def read_entry(message: AbstractIncomingMessage) -> DeadEntry:
    """What a message in ``.dead`` is, whatever put it there."""
    headers = message.headers or {}
    if REASON in headers:
        return _own_entry(message, headers)
    return _legacy_entry(message, headers)


def _own_entry(message: AbstractIncomingMessage, headers: Mapping[str, Any]) -> DeadEntry:
    key = message.message_id or _body_key(message.body)
    entry = DeadEntry(
        key=key,
        reason=str(headers.get(REASON, "")),
        dead_at=_time(headers.get(DEAD_AT)),
        events=[],
        body_bytes=_int(headers.get(ORIGIN_BYTES)),
    )
    if message.type == UNDECODABLE_TYPE or not message.body:
        entry.undecodable = True
        return entry
    try:
        decoded = decode_events(message.body)
    except InvalidEvent:
        entry.undecodable = True
        return entry
    entry.events = [without_text(e) for e in decoded.events]
    if decoded.errors:  # an event that did not decode: its metadata as it came
        entry.invalid = [
            DeadEvent(d.record, entry.reason) for d in invalid_records(message.body, decoded.errors)
        ]
    return entry


def _legacy_entry(message: AbstractIncomingMessage, headers: Mapping[str, Any]) -> DeadEntry:
    deaths = headers.get("x-death") or []
    first = deaths[0] if deaths and isinstance(deaths[0], Mapping) else {}
    why = first.get("reason") or "unknown"
    reason = f"dead-lettered raw by the broker ({_str(why)})"
    entry = DeadEntry(
        key=message.message_id or _body_key(message.body),
        reason=reason,
        dead_at=_time(first.get("time")) or message.timestamp,
        events=[],
        legacy=True,
        holds_text=bool(message.body),  # unknown until it decodes
        body_bytes=len(message.body),
    )
    try:
        decoded = decode_events(message.body)
    except InvalidEvent:
        entry.undecodable = True
        return entry
    entry.holds_text = any(e.text is not None for e in decoded.events) or bool(decoded.errors)
    entry.events = [without_text(e) for e in decoded.events]
    if decoded.errors:
        entry.reason += f"; {len(decoded.errors)} of its events do not decode"
        entry.invalid = invalid_records(message.body, decoded.errors)
    return entry


def invalid_records(body: bytes, errors: Sequence[tuple[int, str]]) -> list[DeadEvent]:
    """The events of ``body`` that did not decode (``errors``: index, reason), as plain
    JSON values for :func:`dead_body` (which keeps only their metadata)."""
    try:
        data = json.loads(body.decode("utf-8", "surrogateescape"))
    except ValueError:
        data = None
    raw = data.get("events") if isinstance(data, dict) else None
    raw = raw if isinstance(raw, list) else []
    return [DeadEvent(_metadata(raw[i] if i < len(raw) else None), f"event #{i}: {reason}")
            for i, reason in errors]  # fmt: skip


def _metadata(raw: object) -> dict[str, Any]:
    """A raw event's known fields but ``text`` (nothing, when it is not an object)."""
    return {k: v for k, v in raw.items() if k in RAW_FIELDS} if isinstance(raw, dict) else {}


def _body_key(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()[:16]


def _time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str | bytes):
        try:
            return datetime.fromisoformat(_str(value))
        except ValueError:
            return None
    return None


def _str(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
