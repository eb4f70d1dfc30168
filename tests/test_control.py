from __future__ import annotations

import uuid

import pytest

from schema.control import CACHES, ControlMessage, InvalidControlMessage


@pytest.mark.parametrize("cache", CACHES)
def test_round_trip(cache: str) -> None:
    org_id = uuid.uuid4()
    assert ControlMessage.decode(ControlMessage(cache, org_id).encode()) == ControlMessage(
        cache, org_id
    )
    assert ControlMessage.decode(ControlMessage(cache).encode()).org_id is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"cache": "everything"}',
        b'{"cache": "keys", "org_id": "not-a-uuid"}',
        b'{"cache": 3}',
    ],
)
def test_garbage_is_rejected_with_a_clear_error(body: bytes) -> None:
    with pytest.raises(InvalidControlMessage):
        ControlMessage.decode(body)
