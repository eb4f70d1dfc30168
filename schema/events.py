"""The event wire format: what proxies publish and consumers (and replay) read.

One AMQP message carries a batch: ``{"v": 1, "events": [...]}`` as JSON, with the
message ``type`` property set to :data:`EVENTS_TYPE`. Proxies publish it with routing
key ``ingest.events``; consumers publish the stored events, sanitised, with
``replay.events`` (see :mod:`lectr.broker`).

An event is metadata about one request: the columns of ``request_logs``. Its optional
``text`` (the request's prompt and the streamed completion) exists only so a consumer
can count tokens a provider did not report; :meth:`RequestEvent.sanitised` drops it, and
nothing durable (Postgres, the replay stream, logs) may ever hold it.

Decoding is per event: one malformed event is reported with its index and reason
while the others in the batch still decode, so the consumer decides what to do with it.
Unknown fields are ignored, so a newer proxy can add fields before consumers read them.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

WIRE_VERSION = 1
EVENTS_TYPE = "lectr.events.v1"
HEALTH_TYPE = "lectr.health.v1"
CONTENT_TYPE = "application/json"
# token_source of an event whose counting text was dropped before any consumer counted
# it (over the proxy's cap, or spooled at shutdown) and whose provider reported no usage.
UNCOUNTED = "uncounted"
# token_source of an event whose tokens a consumer counted with its tokeniser (estimates).
TOKENISER = "tokeniser"


class InvalidEvent(ValueError):
    """A message or event that does not follow this format; the message says why."""


@dataclass(frozen=True, slots=True)
class TokenText:
    """Transient text for token counting. Never stored; dropped once counted."""

    # The request's messages (chat) as sent, or its prompt / input text.
    prompt: Any = None
    # The completion text as streamed, up to the proxy's cap.
    completion: str = ""
    # True when the completion was longer than the cap and was cut.
    truncated: bool = False


@dataclass(slots=True)
class RequestEvent:
    """One proxied request. Field names are the ``request_logs`` column names.

    Treat it as a value: derive a changed copy with :func:`dataclasses.replace`. It is
    not frozen only because a frozen class costs microseconds per instance, and proxies
    and consumers make one per request.
    """

    id: uuid.UUID
    created_at: datetime
    completed_at: datetime
    org_id: uuid.UUID
    api_key_id: uuid.UUID
    provider: str
    endpoint: str
    streaming: bool
    status_code: int
    latency_ms: float
    proxy_instance: str
    provider_unknown: bool = False
    requested_model: str | None = None
    actual_model: str | None = None
    # The model the provider's response (or stream) named as the one that answered.
    response_model: str | None = None
    error_category: str | None = None
    error_source: str | None = None
    ttfb_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    token_source: str | None = None
    cost_usd: Decimal | None = None
    feature: str = "untagged"
    task_type: str | None = None
    rule_id: uuid.UUID | None = None
    skipped_rule_id: uuid.UUID | None = None
    text: TokenText | None = field(default=None, repr=False)

    def sanitised(self) -> RequestEvent:
        """This event without its transient text: the only form that may be kept."""
        return dataclasses.replace(self, text=None)

    def uncounted(self) -> RequestEvent:
        """This event without its text, before any consumer counted its tokens (text over
        the proxy's cap, or spooled): ``token_source`` says :data:`UNCOUNTED` when it
        carried text, which means the provider did not report complete usage."""
        if self.text is None:
            return self
        return dataclasses.replace(self, text=None, token_source=UNCOUNTED)


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    events: list[RequestEvent]
    # (index in the batch, reason) for each event that did not decode.
    errors: list[tuple[int, str]]


def _dump_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):  # asyncpg's UUID type is not uuid.UUID exactly
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def encode_event(event: RequestEvent) -> bytes:
    """One event as JSON (with ``text`` when it carries it), for :func:`batch_body`.

    Raises ``orjson.JSONEncodeError`` (a ``TypeError``) for an event that cannot be
    encoded, such as one holding a string with a lone surrogate."""
    return orjson.dumps(event, default=_dump_default)


_BATCH_HEAD = b'{"v":%d,"events":[' % WIRE_VERSION
_BATCH_TAIL = b"]}"
# Bytes a batch body adds to its encoded events (plus one comma between two events).
BATCH_OVERHEAD = len(_BATCH_HEAD) + len(_BATCH_TAIL)


def batch_body(encoded: Iterable[bytes]) -> bytes:
    """One message body from events encoded one by one with :func:`encode_event`, so a
    batch never fails because of one event and its size is known before it is built."""
    return b"".join((_BATCH_HEAD, b",".join(encoded), _BATCH_TAIL))


def encode_events(events: Iterable[RequestEvent]) -> bytes:
    """One message body for ``events`` (with ``text`` when the events carry it)."""
    return batch_body([encode_event(event) for event in events])


def decode_events(body: bytes) -> DecodedBatch:
    """Decode a message body. Raises :class:`InvalidEvent` if it is not a batch at all."""
    data = _loads(body)
    if not isinstance(data, dict) or data.get("v") != WIRE_VERSION:
        version = data.get("v") if isinstance(data, dict) else None
        raise InvalidEvent(f"not a version {WIRE_VERSION} event batch (v={version!r})")
    raw_events = data.get("events")
    if not isinstance(raw_events, list):
        raise InvalidEvent("'events' must be a list")
    events: list[RequestEvent] = []
    errors: list[tuple[int, str]] = []
    for index, raw in enumerate(raw_events):
        try:
            events.append(_event(raw))
        except InvalidEvent as exc:
            errors.append((index, str(exc)))
    return DecodedBatch(events, errors)


def _loads(body: bytes) -> Any:
    """Parse JSON; text orjson refuses (a lone surrogate, a byte that is not UTF-8) is
    parsed leniently instead, so one bad event does not make its whole batch unreadable:
    such text decodes with lone surrogates, which the consumer's validation refuses per
    event."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            text = body.decode("utf-8", "surrogateescape")
            return json.loads(text, parse_constant=_no_constant)
        except ValueError:
            raise InvalidEvent(f"not JSON: {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# -- field parsing ----------------------------------------------------------------------


def _uuid(value: Any) -> uuid.UUID:
    return uuid.UUID(value)


def _time(value: Any) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("needs a UTC offset")
    return parsed


def _text(max_length: int) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or len(value) > max_length:
            raise ValueError(f"must be a string of at most {max_length} characters")
        return value

    return parse


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("must be a whole number >= 0")
    return value


def _ms(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError("must be a number of milliseconds >= 0")
    return float(value)


def _status(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 999:
        raise ValueError("must be an HTTP status code")
    return value


def _cost(value: Any) -> Decimal:
    cost = Decimal(str(value))
    if not cost.is_finite() or cost < 0:
        raise ValueError("must be a non-negative number")
    return cost


def _token_text(value: Any) -> TokenText:
    if not isinstance(value, dict):
        raise ValueError("must be an object")
    return TokenText(
        prompt=value.get("prompt"),
        completion=_text(1 << 30)(value.get("completion", "")),
        truncated=_bool(value.get("truncated", False)),
    )


_NAME, _MODEL, _SHORT = _text(40), _text(200), _text(40)

# Field name -> parser. Required fields are those without a default on RequestEvent.
_PARSERS: dict[str, Callable[[Any], Any]] = {
    "id": _uuid,
    "created_at": _time,
    "completed_at": _time,
    "org_id": _uuid,
    "api_key_id": _uuid,
    "provider": _NAME,
    "endpoint": _MODEL,
    "streaming": _bool,
    "status_code": _status,
    "latency_ms": _ms,
    "proxy_instance": _MODEL,
    "provider_unknown": _bool,
    "requested_model": _MODEL,
    "actual_model": _MODEL,
    "response_model": _MODEL,
    "error_category": _SHORT,
    "error_source": _SHORT,
    "ttfb_ms": _ms,
    "input_tokens": _count,
    "output_tokens": _count,
    "cached_tokens": _count,
    "token_source": _SHORT,
    "cost_usd": _cost,
    "feature": _text(100),
    "task_type": _SHORT,
    "rule_id": _uuid,
    "skipped_rule_id": _uuid,
    "text": _token_text,
}
_REQUIRED = frozenset(
    f.name
    for f in dataclasses.fields(RequestEvent)
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
)
_OPTIONAL_DEFAULTS = {
    f.name: f.default for f in dataclasses.fields(RequestEvent) if f.name not in _REQUIRED
}


def _event(raw: Any) -> RequestEvent:
    if not isinstance(raw, dict):
        raise InvalidEvent("an event must be an object")
    missing = sorted(_REQUIRED - raw.keys())
    if missing:
        raise InvalidEvent(f"missing {', '.join(missing)}")
    values: dict[str, Any] = {}
    for name, parse in _PARSERS.items():
        value = raw.get(name)
        if value is None:
            if name in _REQUIRED:
                raise InvalidEvent(f"{name}: must not be null")
            values[name] = _OPTIONAL_DEFAULTS[name]
            continue
        try:
            values[name] = parse(value)
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise InvalidEvent(f"{name}: {exc}") from None
    return RequestEvent(**values)


# -- health snapshots -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """A process's pipeline counters, published with routing key ``ingest.health`` and
    message type :data:`HEALTH_TYPE`; consumers store them in ``pipeline_health``.

    Counters are totals since the process started, so a lost snapshot loses nothing.
    """

    component: str
    instance: str
    recorded_at: datetime
    buffer_depth: int | None = None
    events_published: int | None = None
    events_dropped: int | None = None
    publish_failures: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return orjson.dumps({"v": WIRE_VERSION, **dataclasses.asdict(self)})

    @classmethod
    def decode(cls, body: bytes) -> HealthSnapshot:
        """Raises :class:`InvalidEvent` with the reason when ``body`` is not a snapshot."""
        try:
            data = orjson.loads(body)
            if not isinstance(data, dict) or data.get("v") != WIRE_VERSION:
                raise ValueError(f"not a version {WIRE_VERSION} health snapshot")
            details = data.get("details") or {}
            if not isinstance(details, dict):
                raise ValueError("details must be an object")
            counters = {
                name: None if data.get(name) is None else _count(data[name])
                for name in (
                    "buffer_depth",
                    "events_published",
                    "events_dropped",
                    "publish_failures",
                )
            }
            return cls(
                component=_SHORT(data.get("component")),
                instance=_MODEL(data.get("instance")),
                recorded_at=_time(data.get("recorded_at")),
                details=details,
                **counters,
            )
        except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
            raise InvalidEvent(f"health snapshot: {exc}") from None
