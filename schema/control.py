"""Cache-invalidation messages on the ``lectr.control`` fanout exchange.

Whoever changes what a proxy caches (the api, the CLI) publishes one; every proxy
instance reloads the named cache in the background and swaps it in whole.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import orjson

# What a proxy keeps in memory and can reload on its own.
CACHES = ("orgs", "keys", "rules", "provider_configs")


class InvalidControlMessage(ValueError):
    """A control message that cannot be decoded; it is logged and ignored."""


@dataclass(frozen=True)
class ControlMessage:
    cache: str
    # The organisation whose entries changed; None means reload everything.
    org_id: uuid.UUID | None = None

    def __post_init__(self) -> None:
        if self.cache not in CACHES:
            raise InvalidControlMessage(f"unknown cache {self.cache!r}")

    def encode(self) -> bytes:
        return orjson.dumps(
            {"cache": self.cache, "org_id": str(self.org_id) if self.org_id else None}
        )

    @classmethod
    def decode(cls, body: bytes) -> ControlMessage:
        try:
            data = orjson.loads(body)
            org_id = data.get("org_id")
            return cls(cache=data["cache"], org_id=uuid.UUID(org_id) if org_id else None)
        except InvalidControlMessage:
            raise
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
            raise InvalidControlMessage(f"not a control message: {exc}") from None
