"""Opaque keyset cursors: the ``(created_at, id)`` of the last row a page returned.

A cursor is URL-safe base64 (no padding) of ``<created_at ISO 8601>|<id>``. Clients must
treat it as opaque; it is encoded only so that it survives a query string unescaped.
Anything that does not decode to an aware timestamp and a UUID is a 400 naming
``cursor``, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from api.errors import ApiError


def encode(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The ``(created_at, id)`` a cursor names; ``ApiError`` 400 (field ``cursor``) if
    it is not one this API made."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, row_id = raw.partition("|")
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            raise ValueError("no offset")
        return created_at, uuid.UUID(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError("invalid_request", "cursor: not a cursor this API made",
                       field="cursor") from None  # fmt: skip
