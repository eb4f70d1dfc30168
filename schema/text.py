"""Text Postgres can store, the rule every process applies to text it records.

Postgres refuses NUL (``\\x00``) in ``text`` and ``jsonb``, and a lone surrogate (a
code point that is only valid as half of a UTF-16 pair) is not UTF-8 at all, so it can
be neither encoded in an event nor sent. The proxy makes client text storable before it
reaches an event; the consumer checks every event again and makes a storable copy of
what it dead-letters.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
# NUL, and the surrogate range (never valid in UTF-8).
_BAD_CHARS_RE = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why Postgres would refuse ``value`` as text, or None."""
    if value.isascii():  # the usual case, checked fast
        return "holds NUL" if "\x00" in value else None
    bad = _BAD_CHARS_RE.search(value)
    if bad is None:
        return None
    return "holds NUL" if bad.group() == "\x00" else "holds a lone surrogate (not UTF-8)"


def storable(value: str) -> str:
    """``value`` with NUL and lone surrogates replaced by U+FFFD."""
    if value.isascii():  # the usual case: a memchr for NUL
        return value.replace("\x00", REPLACEMENT) if "\x00" in value else value
    return _BAD_CHARS_RE.sub(REPLACEMENT, value)
